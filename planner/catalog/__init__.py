"""The catalogues: accelerators, model footprints and number formats."""
