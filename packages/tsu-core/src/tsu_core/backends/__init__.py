"""Backends that ship with tsu-core (only the exact reference backend)."""
