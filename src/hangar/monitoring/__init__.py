"""Monitoring: inference tables (what endpoints served), quality and drift."""
