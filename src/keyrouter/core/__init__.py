"""The router core: pure decisions about keys, with no I/O and no SDK import.

Everything here takes the current time as an argument and returns values, so it can be tested
without a clock, a network or a provider.
"""
