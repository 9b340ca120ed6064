"""envtools: pack, cache and clean the Python environments shipped to workers."""
