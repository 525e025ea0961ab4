"""hfx pipeline stages and the small modules they share."""
