"""The weather domain: hourly observations at the New York airports."""
