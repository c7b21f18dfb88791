"""Shared machinery: reduction, input checks, registry, Module base."""
