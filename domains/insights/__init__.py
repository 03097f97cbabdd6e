"""The insights domain (consumer-aligned): joins operations, reference, weather and fleet."""
