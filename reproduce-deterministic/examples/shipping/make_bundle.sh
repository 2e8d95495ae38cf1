#!/usr/bin/env bash
# Rebuilds shipping.bundle (the quickstart's target repository) and ci-log.txt (the log of its
# failing CI run, produced by really running its tests and prefixing GitHub Actions timestamps).
# The bundle is committed; run this only to change the example.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
git init -q -b main shipping && cd shipping
export GIT_AUTHOR_DATE="2026-09-01T10:00:00Z" GIT_COMMITTER_DATE="2026-09-01T10:00:00Z"
mkdir -p shipping tests
cat > shipping/__init__.py <<'PY'
"""Shipping cost calculation for the web shop."""
PY
cat > shipping/rates.py <<'PY'
"""Parcel rates: price in cents by weight band and destination zone."""

LIGHT_LIMIT_KG = 5
BASE_CENTS = {"domestic": 490, "eu": 990, "world": 1990}
HEAVY_SURCHARGE_CENTS = {"domestic": 600, "eu": 1400, "world": 3900}


def is_heavy(weight_kg):
    """A parcel is heavy from LIGHT_LIMIT_KG kilograms on (the carrier's table says 'from 5 kg')."""
    return weight_kg > LIGHT_LIMIT_KG


def parcel_price_cents(weight_kg, zone):
    """Price of one parcel in cents. Raises KeyError for an unknown zone."""
    if weight_kg <= 0:
        raise ValueError(f"weight must be positive, got {weight_kg}")
    price = BASE_CENTS[zone]
    if is_heavy(weight_kg):
        price += HEAVY_SURCHARGE_CENTS[zone]
    return price
PY
cat > shipping/cart.py <<'PY'
"""Shipping for a whole cart: one parcel per 20 kg."""

from shipping.rates import parcel_price_cents

MAX_PARCEL_KG = 20


def cart_shipping_cents(total_weight_kg, zone):
    """Shipping for a cart in cents, splitting the weight into parcels of at most 20 kg."""
    remaining = total_weight_kg
    cents = 0
    while remaining > 0:
        parcel = min(remaining, MAX_PARCEL_KG)
        cents += parcel_price_cents(parcel, zone)
        remaining -= parcel
    return cents
PY
cat > tests/__init__.py <<'PY'
PY
cat > tests/test_rates.py <<'PY'
import unittest

from shipping.rates import parcel_price_cents
from shipping.cart import cart_shipping_cents


class RateTest(unittest.TestCase):
    def test_light_domestic(self):
        self.assertEqual(parcel_price_cents(1, "domestic"), 490)

    def test_heavy_eu(self):
        self.assertEqual(parcel_price_cents(12, "eu"), 2390)

    def test_cart_splits_parcels(self):
        self.assertEqual(cart_shipping_cents(30, "domestic"), 1090 + 1090)

    def test_cart_boundary_weight(self):
        # 25 kg = one 20 kg parcel + one 5 kg parcel; both are heavy.
        self.assertEqual(cart_shipping_cents(25, "domestic"), 1090 + 1090)


if __name__ == "__main__":
    unittest.main()
PY
cat > README.md <<'MD'
# shipping

Shipping costs for the web shop. Run the tests with `python3 -m unittest`.
MD
git add -A
git -c user.name="Dana Whitfield" -c user.email="dana@shop.example" commit -qm "Parcel and cart shipping rates"
export GIT_AUTHOR_DATE="2026-09-15T09:30:00Z" GIT_COMMITTER_DATE="2026-09-15T09:30:00Z"
sed -i 's/"world": 1990}/"world": 2190}/' shipping/rates.py
git -c user.name="Sam Okafor" -c user.email="sam@shop.example" commit -qam "Raise world base rate for 2026"
git bundle create -q "$here/shipping.bundle" --all
# The CI log: the real unittest output, in GitHub Actions' timestamped step format.
{
  echo "##[group]Run python -m unittest -v"
  echo "python -m unittest -v"
  echo "shell: /usr/bin/bash -e {0}"
  echo "##[endgroup]"
  python3 -m unittest -v 2>&1 || true
  echo "##[error]Process completed with exit code 1."
} | sed "s#$work/shipping#/home/runner/work/shipping/shipping#g" | awk '{ printf "2026-09-15T09:41:%02d.%07dZ %s\n", 10 + int(NR/40), NR*1337 % 10000000, $0 }' > "$here/ci-log.txt"
echo "wrote $here/shipping.bundle and $here/ci-log.txt"
