"""The ssh backend: a Raspberry Pi as the server host (backend, host) over the system OpenSSH
client with one multiplexed connection per host (connection).
"""
