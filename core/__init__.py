"""Imprint's foundation: model-less mechanisms every app uses once, each with named callers.

Nothing here imports another Imprint app; every app may import from here."""
