"""Small TFLite external delegates in C for the tests (noop, prepare_fails, crash, claim,
not_a_delegate, single), built by build.build_delegates(); check.py runs one through LiteRT."""
