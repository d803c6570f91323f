"""A package, so that test modules in different folders may share a basename and tools/ may import tests.support."""
