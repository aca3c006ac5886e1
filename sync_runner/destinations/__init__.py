"""Destinations by type name: `dbt_studio.yml` says `type: http`, this registry gives the class."""

from __future__ import annotations

from .base import Batch, BatchResult, Destination, Terminal, Transient
from .braze import BrazeDestination
from .duckdb_table import DuckDBDestination
from .file import FileDestination
from .http import HttpDestination
from .hubspot import HubSpotDestination
from .klaviyo import KlaviyoDestination
from .mailchimp import MailchimpDestination
from .postgres import PostgresDestination
from .segment import SegmentDestination

REGISTRY: dict[str, type[Destination]] = {
    cls.type: cls for cls in (HttpDestination, FileDestination, DuckDBDestination, PostgresDestination,
                              HubSpotDestination, BrazeDestination, SegmentDestination, KlaviyoDestination,
                              MailchimpDestination)
}

__all__ = ["REGISTRY", "Batch", "BatchResult", "Destination", "Terminal", "Transient"]
