"""Framework integrations (import the submodule you need: tiercache.contrib.django)."""
