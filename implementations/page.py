"""The look of the project's HTML pages (the report and the profile index): one small
stylesheet of our own, so that every page reads the same and opens offline."""

import html

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d1d1f;
max-width:1320px;margin:0 auto;padding:12px 24px 48px;background:#fff}
h1{font-size:22px;margin:8px 0 4px}h2{font-size:18px;margin:28px 0 8px;padding-top:8px;
border-top:1px solid #e3e3e3}h3{font-size:15px;margin:18px 0 6px}p{margin:6px 0}
nav.toc{font-size:12.5px;color:#555;margin:4px 0 8px}nav.toc a{margin-right:10px}
a{color:#0b57d0;text-decoration:none}a:hover{text-decoration:underline}
table{border-collapse:collapse;font-size:12.5px;margin:8px 0}
td,th{border:1px solid #d6d6d6;padding:3px 8px;vertical-align:top}
th{background:#f3f4f6;text-align:left}tr:nth-child(even) td{background:#fafafa}
img{max-width:100%;height:auto}code{background:#f3f4f6;padding:0 3px;border-radius:3px}
ul{margin:4px 0 4px 22px;padding:0}details{margin:4px 0 8px}summary{cursor:pointer;color:#333}
b.v-holds{color:#137333}b.v-fails{color:#b00020}b.v-part{color:#a15c00}
b.v-untested{color:#666}b.busy{color:#b00020}
.glance{display:flex;gap:18px;align-items:flex-start}.glance>div:first-child{flex:0 0 auto}
.glance>div:last-child{flex:1 1 auto;min-width:0}
"""


def page(title: str, body: str) -> str:
    """A whole HTML page with our stylesheet: `body` is HTML already."""
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'><meta name='viewport' "
            f"content='width=device-width'><title>{html.escape(title)}</title><style>{STYLE}"
            f"</style></head><body>{body}</body></html>")
