"""Hangar."""
