"""Win/loss and rejection reason codes: taxonomy, install, capture and push (docs/reasons.md).

Modules: :mod:`.taxonomy` (the ``[reasons]`` settings), :mod:`.install` (``reasons plan|install``),
:mod:`.capture` (:class:`~crm_bridge.reasons.capture.ReasonCapture`), :mod:`.repository` (the
store tables) and :mod:`.demo` (what ``crm-bridge demo`` shows at the end).  Imports stay
explicit per module so :mod:`crm_bridge.config` can import the taxonomy without the rest.
"""
