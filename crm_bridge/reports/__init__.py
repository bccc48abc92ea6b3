"""The win/loss/rejection report: one model, three renderings (terminal, CSV, HTML).

:mod:`.model` computes everything from the ``reason_outcomes`` rows; the renderers only format.
Keeping the numbers in one place is what lets the tests check them once against a hand-computed
fixture and trust every output format.
"""
