"""Cleaners: small pure steps that keep a candidate or drop it with one reason."""
