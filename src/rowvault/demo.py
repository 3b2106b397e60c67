"""The demo database: shaped like the application rowvault grew out of (users, businesses,
business_products, audit_logs) plus tables for the hard cases - a self-referencing table, a
foreign-key cycle, composite keys, JSON, decimals, binary, UUIDs, times, time zones, a table
without a key, and demo-flagged rows. Deterministic for a given size and seed.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from .database import DatabaseLike, opened

metadata = sa.MetaData()

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("email", sa.String(255), nullable=False, unique=True),
    sa.Column("name", sa.String(120), nullable=False),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("is_demo", sa.Boolean, nullable=False, default=False),
    sa.Column("settings", sa.JSON),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_login_at", sa.DateTime(timezone=True)),
)
businesses = sa.Table(
    "businesses",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("owner_id", sa.ForeignKey("users.id"), nullable=False, index=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("slug", sa.String(200), nullable=False, unique=True),
    sa.Column("is_demo", sa.Boolean, nullable=False, default=False),
    sa.Column("founded_on", sa.Date),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
business_products = sa.Table(
    "business_products",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("business_id", sa.ForeignKey("businesses.id"), nullable=False, index=True),
    sa.Column("sku", sa.String(40), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("price", sa.Numeric(10, 2), nullable=False),
    sa.Column("stock", sa.Integer, nullable=False),
    sa.Column("weight_kg", sa.Float),
    sa.Column("is_active", sa.Boolean, nullable=False),
    sa.Column("attributes", sa.JSON),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
audit_logs = sa.Table(
    "audit_logs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("user_id", sa.ForeignKey("users.id"), index=True),
    sa.Column("action", sa.String(50), nullable=False),
    sa.Column("entity", sa.String(50), nullable=False),
    sa.Column("entity_id", sa.String(64)),
    sa.Column("details", sa.JSON),
    sa.Column("ip_address", sa.String(45)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
)
categories = sa.Table(  # references itself
    "categories",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("parent_id", sa.ForeignKey("categories.id")),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("path", sa.String(500), nullable=False),
)
departments = sa.Table(  # departments.manager_id -> employees, employees.department_id -> departments
    "departments",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("manager_id", sa.ForeignKey("employees.id", use_alter=True, name="fk_dept_manager")),
)
employees = sa.Table(
    "employees",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("department_id", sa.ForeignKey("departments.id"), nullable=False),
    sa.Column("name", sa.String(120), nullable=False),
    sa.Column("salary", sa.Numeric(12, 2), nullable=False),
    sa.Column("hired_on", sa.Date, nullable=False),
    sa.Column("shift_starts", sa.Time),
)
product_categories = sa.Table(  # composite primary key
    "product_categories",
    metadata,
    sa.Column("product_id", sa.ForeignKey("business_products.id"), primary_key=True),
    sa.Column("category_id", sa.ForeignKey("categories.id"), primary_key=True),
    sa.Column("position", sa.SmallInteger, nullable=False),
)
attachments = sa.Table(  # UUID key, binary content, a datetime without time zone
    "attachments",
    metadata,
    sa.Column("id", sa.Uuid(as_uuid=False), primary_key=True),
    sa.Column("product_id", sa.ForeignKey("business_products.id"), nullable=False),
    sa.Column("filename", sa.String(255), nullable=False),
    sa.Column("content", sa.LargeBinary, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("uploaded_at", sa.DateTime, nullable=False),
)
opening_hours = sa.Table(  # composite key, times
    "opening_hours",
    metadata,
    sa.Column("business_id", sa.ForeignKey("businesses.id"), primary_key=True),
    sa.Column("weekday", sa.SmallInteger, primary_key=True, autoincrement=False),
    sa.Column("opens", sa.Time, nullable=False),
    sa.Column("closes", sa.Time, nullable=False),
)
daily_metrics = sa.Table(  # no primary key, no unique key
    "daily_metrics",
    metadata,
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("metric", sa.String(50), nullable=False),
    sa.Column("value", sa.Float, nullable=False),
)

SHARES = {  # fraction of the records in each table
    "users": 0.04,
    "businesses": 0.04,
    "business_products": 0.40,
    "audit_logs": 0.30,
    "categories": 0.01,
    "departments": 0.002,
    "employees": 0.02,
    "product_categories": 0.10,
    "attachments": 0.02,
    "opening_hours": 0.03,
}
FIRST = ["Ada", "Zoë", "Jürgen", "Amélie", "Søren", "Yuki", "Olu", "Priya", "Mateo", "Li", "Noor"]
LAST = ["Lovelace", "Müller", "García", "Østergaard", "田中", "Okafor", "Sharma", "O'Brien"]
WORDS = [
    "artisan",
    "bakery",
    "coffee",
    "bicycle",
    "repair",
    "studio",
    "garden",
    "books",
    "ceramic",
    "tea",
    "wool",
    "market",
    "printing",
    "café",
    "naïve",
    "déjà-vu",
]
ACTIONS = ["login", "logout", "create", "update", "delete", "export", "invite"]
EPOCH = datetime(2023, 1, 1, tzinfo=UTC)


def table_sizes(records: int) -> dict[str, int]:
    """How many rows each table gets so that they add up to `records` exactly."""
    if records < 50:
        raise ValueError("the demo needs at least 50 records")
    sizes = {name: max(2, int(records * share)) for name, share in SHARES.items()}
    sizes["departments"] = max(3, sizes["departments"])
    sizes["opening_hours"] = min(sizes["opening_hours"], sizes["businesses"] * 7)
    per_product = min(3, sizes["categories"])
    sizes["product_categories"] = min(sizes["product_categories"], sizes["business_products"] * per_product)
    sizes["daily_metrics"] = records - sum(sizes.values())
    if sizes["daily_metrics"] < 0:
        sizes["audit_logs"] += sizes["daily_metrics"]
        sizes["daily_metrics"] = 0
    return sizes


@dataclass
class _Gen:
    rng: random.Random
    sizes: dict[str, int]

    def moment(self, days: int = 700) -> datetime:
        return EPOCH + timedelta(
            seconds=self.rng.randrange(days * 86400), microseconds=self.rng.randrange(10**6)
        )

    def words(self, n: int) -> str:
        return " ".join(self.rng.choice(WORDS) for _ in range(n))

    def users(self) -> Iterator[dict[str, Any]]:
        for i in range(1, self.sizes["users"] + 1):
            name = f"{self.rng.choice(FIRST)} {self.rng.choice(LAST)}"
            created = self.moment()
            yield {
                "id": i,
                "email": f"user{i}@example.com",
                "name": name,
                "role": self.rng.choice(["owner", "staff", "admin"]),
                "is_demo": i % 20 == 0,
                "settings": {
                    "theme": self.rng.choice(["light", "dark"]),
                    "notifications": {"email": True, "sms": False},
                    "tags": ["a", "ü"],
                },
                "created_at": created,
                "last_login_at": None
                if i % 7 == 0
                else created + timedelta(hours=self.rng.randrange(1, 5000)),
            }

    def businesses(self) -> Iterator[dict[str, Any]]:
        n_users = self.sizes["users"]
        for i in range(1, self.sizes["businesses"] + 1):
            owner = self.rng.randrange(1, n_users + 1)
            created = self.moment()
            yield {
                "id": i,
                "owner_id": owner,
                "name": f"{self.words(2).title()} {i}",
                "slug": f"business-{i}",
                "is_demo": owner % 20 == 0,
                "founded_on": date(1990, 1, 1) + timedelta(days=self.rng.randrange(12000)),
                "created_at": created,
                "updated_at": created + timedelta(days=self.rng.randrange(300)),
            }

    def business_products(self) -> Iterator[dict[str, Any]]:
        n_business = self.sizes["businesses"]
        for i in range(1, self.sizes["business_products"] + 1):
            yield {
                "id": i,
                "business_id": self.rng.randrange(1, n_business + 1),
                "sku": f"SKU-{i:08d}",
                "name": f"{self.words(2).title()} #{i}",
                "description": None if i % 11 == 0 else self.words(8),
                "price": Decimal(self.rng.randrange(50, 500000)) / 100,
                "stock": self.rng.randrange(0, 1000),
                "weight_kg": round(self.rng.uniform(0.01, 40.0), 3) if i % 5 else None,
                "is_active": i % 9 != 0,
                "attributes": {
                    "color": self.rng.choice(["red", "green", "blue"]),
                    "size": self.rng.randrange(1, 50),
                }
                if i % 3
                else None,
                "created_at": self.moment(),
            }

    def audit_logs(self) -> Iterator[dict[str, Any]]:
        n_users = self.sizes["users"]
        for i in range(1, self.sizes["audit_logs"] + 1):
            yield {
                "id": i,
                "user_id": None if i % 13 == 0 else self.rng.randrange(1, n_users + 1),
                "action": self.rng.choice(ACTIONS),
                "entity": self.rng.choice(["user", "business", "product"]),
                "entity_id": str(self.rng.randrange(1, 10**6)),
                "details": {"changes": self.rng.randrange(0, 9), "via": "api"} if i % 2 else None,
                "ip_address": f"10.{i % 250}.{(i // 250) % 250}.{i % 7}",
                "created_at": self.moment(),
            }

    def categories(self) -> Iterator[dict[str, Any]]:
        paths: dict[int, str] = {}
        for i in range(1, self.sizes["categories"] + 1):
            parent = None if i <= 5 else self.rng.randrange(1, i)
            name = f"{self.rng.choice(WORDS)}-{i}"
            paths[i] = f"{paths[parent]}/{name}" if parent else name
            yield {"id": i, "parent_id": parent, "name": name, "path": paths[i][:500]}

    def departments(self) -> Iterator[dict[str, Any]]:
        n_emp = self.sizes["employees"]
        for i in range(1, self.sizes["departments"] + 1):
            yield {
                "id": i,
                "name": f"Department {i}",
                "manager_id": self.rng.randrange(1, n_emp + 1) if n_emp else None,
            }

    def employees(self) -> Iterator[dict[str, Any]]:
        n_dep = self.sizes["departments"]
        for i in range(1, self.sizes["employees"] + 1):
            yield {
                "id": i,
                "department_id": self.rng.randrange(1, n_dep + 1),
                "name": f"{self.rng.choice(FIRST)} {self.rng.choice(LAST)}",
                "salary": Decimal(self.rng.randrange(2000000, 15000000)) / 100,
                "hired_on": date(2010, 1, 1) + timedelta(days=self.rng.randrange(5000)),
                "shift_starts": None
                if i % 4 == 0
                else time(self.rng.randrange(6, 11), self.rng.choice([0, 15, 30, 45])),
            }

    def product_categories(self) -> Iterator[dict[str, Any]]:
        n_prod, n_cat = self.sizes["business_products"], self.sizes["categories"]
        for j in range(self.sizes["product_categories"]):
            product = j % n_prod + 1
            position = j // n_prod
            yield {
                "product_id": product,
                "category_id": (product + position) % n_cat + 1,
                "position": position,
            }

    def attachments(self) -> Iterator[dict[str, Any]]:
        n_prod = self.sizes["business_products"]
        for i in range(1, self.sizes["attachments"] + 1):
            content = self.rng.randbytes(self.rng.randrange(16, 200)) + b"\x00\xff"
            yield {
                "id": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
                "product_id": self.rng.randrange(1, n_prod + 1),
                "filename": f"file-{i}.bin",
                "content": content,
                "sha256": hashlib.sha256(content).hexdigest(),
                "uploaded_at": self.moment().replace(tzinfo=None),
            }

    def opening_hours(self) -> Iterator[dict[str, Any]]:
        for j in range(self.sizes["opening_hours"]):
            opens = time(self.rng.randrange(6, 11), self.rng.choice([0, 30]))
            yield {
                "business_id": j // 7 + 1,
                "weekday": j % 7,
                "opens": opens,
                "closes": time(opens.hour + 8, opens.minute, 0, 500000),
            }

    def daily_metrics(self) -> Iterator[dict[str, Any]]:
        for j in range(self.sizes["daily_metrics"]):
            yield {
                "day": date(2024, 1, 1) + timedelta(days=j // 4),
                "metric": ["visits", "orders", "revenue", "refunds"][j % 4],
                "value": round(self.rng.uniform(0, 10000), 4),
            }


ORDER = [
    "users",
    "businesses",
    "business_products",
    "audit_logs",
    "categories",
    "departments",
    "employees",
    "product_categories",
    "attachments",
    "opening_hours",
    "daily_metrics",
]


def build_demo(
    db: DatabaseLike,
    records: int = 100_000,
    *,
    seed: int = 7,
    on_table: Callable[[str, int], None] | None = None,
) -> dict[str, int]:
    """(Re)create the demo tables in `db` and fill them with `records` rows in total."""
    sizes = table_sizes(records)
    gen = _Gen(random.Random(seed), sizes)
    with opened(db) as database:
        engine = database.engine
        metadata.drop_all(engine)
        metadata.create_all(engine)
        with engine.begin() as conn:
            managers: list[dict[str, Any]] = []
            for name in ORDER:
                rows: Iterator[dict[str, Any]] = getattr(gen, name)()
                if name == "departments":  # the cycle: managers are set once employees exist
                    listed = list(rows)
                    managers = [{"d": r["id"], "m": r["manager_id"]} for r in listed]
                    rows = iter([{**r, "manager_id": None} for r in listed])
                _insert(conn, metadata.tables[name], rows)
                if on_table:
                    on_table(name, sizes[name])
            set_manager = (
                departments.update()
                .where(departments.c.id == sa.bindparam("d"))
                .values(manager_id=sa.bindparam("m"))
            )
            conn.execute(set_manager, managers)
    return sizes


def _insert(
    conn: sa.Connection, table: sa.Table, rows: Iterator[dict[str, Any]], chunk: int = 10_000
) -> None:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= chunk:
            conn.execute(table.insert(), batch)
            batch = []
    if batch:
        conn.execute(table.insert(), batch)
