"""towers."""
