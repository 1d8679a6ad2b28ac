# mediasoup 3.8.4 vendors a gyp that still uses the collections aliases removed in Python 3.10.
import collections
import collections.abc

for _name in ("MutableSet", "Mapping", "MutableMapping", "Sequence", "Iterable", "Callable"):
    if not hasattr(collections, _name):
        setattr(collections, _name, getattr(collections.abc, _name))
