"""CLI tests: parsing and rendering on real model objects, no cluster."""
