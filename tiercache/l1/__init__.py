"""L1: the in-process tier. `tiercache.HashCache` is the compiled HashCache (tiercache._core_c) or, without
the extension, the pure-Python twin assembled here:

    _hashcache_py   HashCache: hash table (a dict here), recency list, byte accounting
      ├── _ttl_py       the expiry heap it holds
      └── _wtinylfu_py  the W-TinyLFU policy it holds under policy="tinylfu"
            └── _sketch_py  the frequency sketch
    cleanup         the optional background expiry thread (both implementations)

Nothing is imported here: the compiled core imports `cleanup` while tiercache._compat is still choosing.
"""
