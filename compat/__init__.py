"""Compatibility suite: drives stock Kafka clients through scenarios against a broker."""
