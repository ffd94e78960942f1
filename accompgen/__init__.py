"""AccompGen: a sung vocal in, an instrumental accompaniment out.

Importing the package loads no torch: the token layout, configs and decoding loop are shared with the
torch-free bridge runtime.
"""

__version__ = "0.1.0"
