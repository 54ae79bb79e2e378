"""Google API clients built from the discovery documents bundled in the library.

The bundled documents mean no network call at build time. ``root_url`` moves every
request (uploads and batch included) to another host: the stand-ins in tests and in
the demo; empty means Google itself. Retries of 429, 5xx and ``rateLimitExceeded`` use
the library's own exponential backoff with jitter (``execute(num_retries=...)``).
"""

from __future__ import annotations

import json
from typing import Any

import googleapiclient.discovery
import googleapiclient.discovery_cache
from google.auth.credentials import Credentials

#: Retries per request for 429, 5xx and rate-limit 403s (waits ~1, 2, 4, 8, 16 s, jittered).
DEFAULT_NUM_RETRIES = 5


def build_service(api: str, version: str, credentials: Credentials, root_url: str = "") -> Any:
    """A ``googleapiclient`` resource for ``api``/``version``, at ``root_url`` if given."""
    doc = googleapiclient.discovery_cache.get_static_doc(api, version)
    if doc is None:
        raise RuntimeError(f"no bundled discovery document for {api} {version}")
    if root_url:
        parsed = json.loads(doc)
        parsed["rootUrl"] = root_url.rstrip("/") + "/"
        doc = json.dumps(parsed)
    return googleapiclient.discovery.build_from_document(doc, credentials=credentials)
