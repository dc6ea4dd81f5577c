"""Helpers every stage shares: parameter checks, number and table formatting, atomic files."""
