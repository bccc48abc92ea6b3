"""The Salesforce connector (``type = "salesforce"``).

Reads with ``queryAll`` (deletes and merges in the same pages), writes through Composite carrying
sObject Collections (1,000 records per API call) or Bulk API 2.0 for large batches, and goes
through crm-bridge's HTTP seam for tokens, retries and the daily API budget.  See
``docs/connectors/salesforce.md``.
"""

from crm_bridge.connectors.salesforce.connector import SalesforceConnector
from crm_bridge.connectors.salesforce.settings import SalesforceSettings

__all__ = ["SalesforceConnector", "SalesforceSettings"]
