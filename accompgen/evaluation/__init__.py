"""Held-out token metrics and Frechet Audio Distance (torch)."""
