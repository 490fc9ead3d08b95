"""Rogatory wire protocol: pure, sans-IO. Bytes and values in, bytes and values out."""
