"""Drug quick-test kits at the edge: the catalogue file, the photo reader, the reading card, analyzer exports."""
