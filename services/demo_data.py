"""What `dealreg up --demo` seeds: a policy with SLAs of seconds, a dozen partners, and customers.

Durations are decimal hours and days so that a newcomer watches reviews, ties and escalations
happen within a minute.
"""

from __future__ import annotations

from typing import Any

DEMO_POLICY: dict[str, Any] = {
    "tiers": ["platinum", "gold", "silver", "registered"],
    "protection_days": 90,
    "tier_protection_days": {"platinum": 120},
    "minimum_value": {"amount": "5000", "currency": "USD"},
    "fx": {"base": "USD", "rates": {"EUR": "1.08", "GBP": "1.27", "CAD": "0.73"}},
    "products": ["firewall", "sd-wan", "endpoint", "cloud", "support"],
    "tie_window_minutes": 0.03,  # 1.8 s: registrations that close together are decided together
    "review": {
        "enabled": True,
        "auto_approve_below": {"amount": "50000", "currency": "USD"},
        "auto_approve_tiers": ["platinum"],
        "sla_hours": 0.02,
        "on_breach": "approve",
    },  # 72 s
    "escalation": [
        {"level": 1, "role": "channel_manager", "sla_hours": 0.004},  # 14.4 s
        {"level": 2, "role": "regional_director", "sla_hours": 0.005},  # 18 s
        {"level": 3, "role": "vp_channel", "sla_hours": 0.006},  # 21.6 s
    ],
    "on_final_breach": "first_to_register",
    "appeal": {"window_days": 10, "max_appeals": 1},
}

# partner id -> (name, tier, type, the person who registers its deals)
PARTNERS: dict[str, tuple[str, str, str, str]] = {
    "northstar": ("Northstar Systems", "platinum", "si", "maria.lopez@northstar.example"),
    "bluepeak": ("BluePeak Networks", "platinum", "reseller", "tom.baker@bluepeak.example"),
    "cobalt": ("Cobalt Managed Services", "gold", "msp", "priya.shah@cobalt.example"),
    "redwood": ("Redwood IT", "gold", "reseller", "sam.oneil@redwood.example"),
    "ironclad": ("Ironclad Integration", "gold", "si", "lena.fischer@ironclad.example"),
    "brightpath": ("Brightpath Distribution", "gold", "distributor", "kofi.mensah@brightpath.example"),
    "lumen": ("Lumen Solutions", "silver", "reseller", "ana.silva@lumen.example"),
    "tidewater": ("Tidewater MSP", "silver", "msp", "jack.moore@tidewater.example"),
    "quartz": ("Quartz Referral Group", "silver", "referral", "yuki.tanaka@quartz.example"),
    "summit": ("Summit Tech Partners", "silver", "reseller", "omar.haddad@summit.example"),
    "pebble": ("Pebble Consulting", "registered", "referral", "ella.jones@pebble.example"),
    "kite": ("Kite Cloud Services", "registered", "msp", "noah.kim@kite.example"),
}

CUSTOMERS: dict[str, dict[str, str]] = {
    "initech": {"name": "Initech Inc.", "domain": "https://www.initech.com", "country": "US", "city": "Austin"},
    "initech2": {"name": "INITECH", "domain": "initech.com", "country": "US"},
    "hooli": {"name": "Hooli", "domain": "hooli.xyz", "country": "US", "city": "Palo Alto"},
    "umbrella": {"name": "Umbrella Health GmbH", "domain": "umbrella-health.de", "country": "DE", "city": "Berlin"},
    "globex": {"name": "Globex Corporation", "domain": "globex.com", "country": "US", "duns": "150483782"},
    "globex2": {"name": "Globex Corp", "domain": "sales.globex.com", "country": "US"},
    "vandelay": {"name": "Vandelay Industries", "country": "US", "city": "New York"},
    "vandelay2": {"name": "Vandelay Industries, Inc.", "country": "US"},
    "wonka": {"name": "Wonka Industries Ltd", "domain": "wonka.co.uk", "country": "GB"},
    "wonka2": {"name": "Wonka Industries", "domain": "www.wonka.co.uk", "country": "GB"},
    "stark": {"name": "Stark Industries", "domain": "starkindustries.com", "country": "US", "tax_id": "US-94-1234567"},
    "stark2": {"name": "Stark Ind.", "country": "US", "tax_id": "us 94 1234567"},
    "oscorp": {"name": "Oscorp", "domain": "oscorp.com", "country": "US"},
    "tyrell": {"name": "Tyrell Corporation", "domain": "tyrell.ca", "country": "CA"},
    "soylent": {"name": "Soylent S.A.", "domain": "soylent.fr", "country": "FR", "city": "Lyon"},
    "cyberdyne": {"name": "Cyberdyne Systems", "domain": "cyberdyne.jp", "country": "JP"},
    "massive": {"name": "Massive Dynamic", "domain": "massivedynamic.com", "country": "US"},
}
