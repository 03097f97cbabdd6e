"""The operations domain: every flight that left New York, cleaned and classified."""
