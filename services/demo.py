"""`dealreg up --demo`: seed a program and play a minute of partner activity against the running APIs.

`seed` talks to both services over HTTP with tokens it mints, like partner portals, the vendor's CRM
and channel managers would: automatic approvals, a waitlist, a review with an info request,
rejections, a direct deal, a tie that escalates and breaches its SLA, a decision and an appeal.
Progress goes to stderr. Steps whose endpoint this build lacks are noted and skipped.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import sys
from typing import Any

import httpx

from services.demo_data import CUSTOMERS, DEMO_POLICY, PARTNERS
from services.tokens import mint


def say(message: str) -> None:
    print(f"demo: {message}", file=sys.stderr, flush=True)


async def seed(registration_url: str, conflict_url: str, signing_key: str, *, pace: float = 1.0) -> None:
    """Seed the demo program and play its story (about 30 s at `pace` 1; smaller is faster)."""
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request would drown the story
    async with (
        httpx.AsyncClient(base_url=registration_url, timeout=15) as reg,
        httpx.AsyncClient(base_url=conflict_url, timeout=15) as con,
    ):
        demo = Demo(reg, con, signing_key, pace)
        await demo.set_up()
        await demo.play()
        await demo.wait_for_watchers()
        say(
            f"done: watch GET {conflict_url}/v1/conflicts?program_id={demo.program} "
            f"(token: dealreg token --role ops --program {demo.program})"
        )


class Demo:
    def __init__(self, reg: httpx.AsyncClient, con: httpx.AsyncClient, key: str, pace: float) -> None:
        self.reg, self.con, self.key, self.pace = reg, con, key, pace
        self.program = "demo"
        self.watchers: list[asyncio.Task] = []
        self.today = dt.datetime.now(dt.UTC).date()

    def auth(self, role: str, **scope: Any) -> dict[str, str]:
        token = mint(self.key, role=role, now=dt.datetime.now(dt.UTC), ttl=dt.timedelta(hours=12), **scope)
        return {"Authorization": f"Bearer {token}"}

    def partner(self, partner_id: str) -> dict[str, str]:
        return self.auth("partner", program_id=self.program, partner_id=partner_id, subject=PARTNERS[partner_id][3])

    def manager(self) -> dict[str, str]:
        return self.auth("authority", program_id=self.program, level=1, subject="claire.dubois@vendor.example")

    async def pause(self, seconds: float) -> None:
        await asyncio.sleep(seconds * self.pace)

    async def call(
        self, client: httpx.AsyncClient, method: str, path: str, headers: dict, what: str, **kw: Any
    ) -> httpx.Response | None:
        """The response when it succeeded; otherwise a note, and None (the story goes on)."""
        r = await client.request(method, path, headers=headers, **kw)
        if r.is_success:
            return r
        if r.status_code in (404, 405) and what.startswith("("):
            say(f"note: {what[1:-1]} is not available in this build ({r.status_code}); skipping")
        else:
            say(f"note: {what} answered {r.status_code}: {r.text[:200]}")
        return None

    async def set_up(self) -> None:
        admin = self.auth("admin", subject="ops-admin@vendor.example")
        for n in range(1, 100):  # a new program per run: an earlier run's claims would change the story
            self.program = "demo" if n == 1 else f"demo-{n}"
            r = await self.con.get(f"/v1/programs/{self.program}/policy", headers=admin)
            if not r.is_success or r.json()["version"] == 0:
                break
        await self.call(
            self.reg,
            "PUT",
            f"/v1/programs/{self.program}",
            admin,
            "program",
            json={"name": "Acme Networks partner program (demo)"},
        )
        for partner_id, (name, tier, kind, _) in PARTNERS.items():
            await self.call(
                self.reg,
                "PUT",
                f"/v1/programs/{self.program}/partners/{partner_id}",
                admin,
                "partner",
                json={"name": name, "tier": tier, "type": kind},
            )
        r = await self.call(self.con, "PUT", f"/v1/programs/{self.program}/policy", admin, "policy", json=DEMO_POLICY)
        say(
            f"program {self.program}: {len(PARTNERS)} partners, policy v{r.json()['version'] if r else '?'} "
            "(review on, tie window 1.8 s, escalation SLAs 14-22 s)"
        )

    async def register(
        self,
        partner_id: str,
        customer: str,
        amount: str,
        currency: str = "USD",
        products: tuple[str, ...] = ("firewall", "support"),
        deal_type: str = "new",
        notes: str | None = None,
    ) -> str | None:
        body = {
            "external_ref": f"{partner_id[:3].upper()}-{customer.upper()}-{dt.datetime.now(dt.UTC):%H%M%S%f}",
            "customer": CUSTOMERS[customer],
            "products": list(products),
            "deal_type": deal_type,
            "estimated_value": {"amount": amount, "currency": currency},
            "expected_close": (self.today + dt.timedelta(days=90)).isoformat(),
            "notes": notes,
        }
        r = await self.call(
            self.reg,
            "POST",
            "/v1/registrations",
            self.partner(partner_id),
            "registration",
            json={k: v for k, v in body.items() if v is not None},
        )
        if r is None:
            return None
        rid = r.json()["id"]
        name = CUSTOMERS[customer]["name"]
        say(f"{partner_id} ({PARTNERS[partner_id][1]}) registers {name} for {amount} {currency}")
        self.follow(partner_id, rid, f"{partner_id} on {name}")
        return rid

    def follow(self, partner_id: str, rid: str, who: str, seen: str = "pending") -> None:
        """Print the registration's next status once it leaves `seen` (in the background)."""
        self.watchers.append(asyncio.create_task(self.watch(partner_id, rid, who, seen)))

    async def status(self, partner_id: str, rid: str) -> dict:
        r = await self.reg.get(f"/v1/registrations/{rid}", headers=self.partner(partner_id))
        return r.json() if r.is_success else {}

    async def watch(self, partner_id: str, rid: str, who: str, seen: str) -> None:
        for _ in range(300):
            doc = await self.status(partner_id, rid)
            if doc.get("status", seen) != seen:
                why = f" ({doc['status_reason']})" if doc.get("status_reason") else ""
                say(f"  {who}: {doc['status']}{why}")
                return
            await asyncio.sleep(0.1)

    async def wait_for_watchers(self) -> None:
        await asyncio.gather(*self.watchers, return_exceptions=True)

    async def conflict_of(self, rid: str) -> dict | None:
        for _ in range(100):
            r = await self.con.get(
                "/v1/conflicts",
                params={"program_id": self.program, "limit": "500"},
                headers=self.auth("ops", program_id=self.program),
            )
            if r.status_code in (404, 405):
                return None
            for c in r.json().get("items", []) if r.is_success else []:
                if rid in {x.get("registration_id") for x in c["claims"]}:
                    return c
            await asyncio.sleep(0.2)
        return None

    async def play(self) -> None:
        crm = self.auth("integration", program_id=self.program, subject="salesforce-sync@vendor.example")
        deal = {
            "external_ref": "SF-0042",
            "customer": CUSTOMERS["globex"],
            "products": ["firewall", "support"],
            "owner": "dana.white@vendor.example",
            "opened_on": self.today.isoformat(),
            "expected_close": (self.today + dt.timedelta(days=120)).isoformat(),
        }
        if await self.call(
            self.con, "POST", f"/v1/programs/{self.program}/direct-deals", crm, "direct deal", json=deal
        ):
            say("the vendor's CRM recorded a direct deal on Globex Corporation")
        await self.pause(1)
        await self.register("northstar", "initech", "180000.00", notes="Data-centre refresh, CISO sponsor")
        await self.pause(1.5)
        await self.register("lumen", "hooli", "22000.00", products=("endpoint",))
        await self.pause(1.5)
        umbrella = await self.register("cobalt", "umbrella", "95000.00", "EUR", ("sd-wan", "support"))
        await self.pause(1.5)
        vandelay = await self.register("ironclad", "vandelay", "140000.00", products=("firewall",))
        await self.register("brightpath", "vandelay2", "150000.00", products=("firewall", "cloud"))
        await self.pause(2)
        await self.register("redwood", "initech2", "60000.00", products=("firewall",))
        await self.pause(1.5)
        await self.register("pebble", "globex2", "30000.00", products=("firewall",))
        await self.pause(1.5)
        await self.review(umbrella, "request_info", "Which sites are in scope, and who is the economic buyer?")
        await self.register("quartz", "oscorp", "3000.00", products=("cloud",))
        await self.pause(1.5)
        summit = await self.register("summit", "wonka", "70000.00", "GBP", ("firewall", "support"))
        tidewater = await self.register("tidewater", "wonka2", "65000.00", "GBP", ("firewall",))
        await self.pause(2)
        await self.answer_info_request(umbrella)
        await self.register("kite", "tyrell", "40000.00", "CAD", ("printers",))
        await self.pause(1.5)
        await self.register("bluepeak", "stark", "250000.00", products=("cloud", "support"))
        await self.register("tidewater", "cyberdyne", "8000000", "JPY", ("cloud",))
        await self.pause(2)
        await self.review(umbrella, "approve", "Thanks, 14 sites confirmed with the customer.")
        await self.register("brightpath", "stark2", "90000.00", products=("cloud",))
        await self.pause(1.5)
        await self.decide_and_appeal(summit, tidewater)
        await self.register("redwood", "soylent", "45000.00", "EUR", ("endpoint", "support"))
        await self.pause(2)
        await self.register("cobalt", "massive", "30000.00", products=("cloud",))
        await self.watch_escalation(vandelay)

    async def review(self, rid: str | None, action: str, comment: str) -> None:
        if rid is None:
            return
        await self.wait_status("cobalt", rid, "pending_review")
        if await self.call(
            self.con,
            "POST",
            f"/v1/reviews/{rid}",
            self.manager(),
            "(the review API)",
            json={"action": action, "comment": comment},
        ):
            say(f"channel manager: {action.replace('_', ' ')} on cobalt's Umbrella Health registration")
            if action == "approve":
                self.follow("cobalt", rid, "cobalt on Umbrella Health", "pending_review")

    async def answer_info_request(self, rid: str | None) -> None:
        if rid is None or not await self.wait_status("cobalt", rid, "info_requested", within=3):
            return
        doc = await self.status("cobalt", rid)
        headers = {**self.partner("cobalt"), "If-Match": f'"{doc["version"]}"'}
        if await self.call(
            self.reg,
            "PATCH",
            f"/v1/registrations/{rid}",
            headers,
            "amendment",
            json={"notes": "14 sites in DACH; economic buyer: CIO Dr. Weber"},
        ):
            say("cobalt answered the info request by amending its registration")

    async def wait_status(self, partner_id: str, rid: str, wanted: str, within: float = 10) -> bool:
        for _ in range(int(within * 10)):
            if (await self.status(partner_id, rid)).get("status") == wanted:
                return True
            await asyncio.sleep(0.1)
        return False

    async def decide_and_appeal(self, summit: str | None, tidewater: str | None) -> None:
        conflict = await self.conflict_of(summit) if summit else None
        if conflict is None:
            say("note: no conflict to decide on Wonka Industries; skipping the decision and the appeal")
            return
        say(f"tie on Wonka Industries: conflict {conflict['id'][:8]} at level 1 ({conflict['authority_role']})")
        decision = {
            "outcome": "award",
            "winner": summit,
            "rationale": "Summit ran the proof of concept with the customer's IT team.",
        }
        if not await self.call(
            self.con,
            "POST",
            f"/v1/conflicts/{conflict['id']}/decision",
            self.manager(),
            "(the decision API)",
            json=decision,
        ):
            return
        say("channel manager awarded Wonka Industries to summit")
        self.follow("summit", summit, "summit on Wonka Industries Ltd", "under_review")
        if tidewater and await self.wait_status("tidewater", tidewater, "rejected", within=5):
            reason = {"reason": "We introduced Wonka to the vendor at the London roadshow in March."}
            if await self.call(
                self.reg,
                "POST",
                f"/v1/registrations/{tidewater}/appeal",
                self.partner("tidewater"),
                "(the appeal)",
                json=reason,
            ):
                say("tidewater appealed the decision")
                self.follow("tidewater", tidewater, "tidewater on Wonka Industries", "rejected")

    async def watch_escalation(self, vandelay: str | None) -> None:
        conflict = await self.conflict_of(vandelay) if vandelay else None
        if conflict is None:
            return
        say(f"tie on Vandelay Industries: conflict {conflict['id'][:8]}, nobody answers: due {conflict['due_at']}")
        ops = self.auth("ops", program_id=self.program)
        for _ in range(int(45 / 0.5)):
            r = await self.con.get(f"/v1/conflicts/{conflict['id']}", headers=ops)
            if r.is_success and (r.json()["level"] > 1 or r.json()["state"] == "resolved"):
                c = r.json()
                say(
                    f"Vandelay's SLA breached: the conflict is now {c['state']} at level {c['level']} "
                    f"({c['authority_role']})"
                )
                return
            await asyncio.sleep(0.5)
