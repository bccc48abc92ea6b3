"""Sales-accepted-lead (SAL) SLA support.

SLA clocks run in *business* time: a lead handed to a rep at 17:59 on a Friday
has not been waiting all weekend.  The building block for that is
:mod:`crm_bridge.sla.calendar`; import from there explicitly so that this
package stays cheap to import and its public surface stays deliberate.
"""
