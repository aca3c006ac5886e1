"""The small core every layer may use: user errors, secret redaction, package paths, rate limiting.

It imports nothing else of sync_runner, so anything can depend on it.
"""
