"""Cost of column encryption: writing and reading patient profiles with encrypted
fields against the same rows written and read as plain text in the same run.

    .venv/bin/python bench/crypto.py [--rows 2000]

Prints both figures, their ratio, and one JSON line at the end.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from _django import django_with_scratch_db


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=2000)
    args = parser.parse_args()

    with django_with_scratch_db("crypto"):
        from django.db import connection

        from accounts.models import PatientProfile, User
        from clinic.crypto import keyring

        keyring()  # key derivation happens once per process; not part of the per-row cost
        users = User.objects.bulk_create(
            [User(email=f"b{i}@bench.test", email_index=f"{i:064d}") for i in range(args.rows)]
        )
        values = {
            "last_name": "Константинопольская",
            "first_name": "Евдокия",
            "middle_name": "Аркадьевна",
            "phone": "+7 912 345-67-89",
            "address": "г. Москва, ул. Садовая-Кудринская, д. 25, кв. 14",
            "insurance_policy": "7700123456789012",
        }

        with connection.cursor() as cursor:
            cursor.execute(
                "CREATE TABLE bench_plain (id serial primary key, user_id bigint, last_name text, "
                "first_name text, middle_name text, phone text, address text, "
                "insurance_policy text)"
            )

        def write_encrypted() -> float:
            started = time.perf_counter()
            PatientProfile.objects.bulk_create([PatientProfile(user=u, **values) for u in users])
            return time.perf_counter() - started

        def write_plain() -> float:
            started = time.perf_counter()
            with connection.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO bench_plain (user_id, last_name, first_name, middle_name, phone, "
                    "address, insurance_policy) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    [(u.pk, *values.values()) for u in users],
                )
            return time.perf_counter() - started

        def read_encrypted() -> float:
            started = time.perf_counter()
            rows = list(PatientProfile.objects.values_list(*values))
            assert rows[0][0] == values["last_name"]
            return time.perf_counter() - started

        def read_plain() -> float:
            started = time.perf_counter()
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT {', '.join(values)} FROM bench_plain")  # noqa: S608
                rows = cursor.fetchall()
            assert rows[0][0] == values["last_name"]
            return time.perf_counter() - started

        enc_write, plain_write = write_encrypted(), write_plain()
        enc_reads = [read_encrypted() for _ in range(5)]
        plain_reads = [read_plain() for _ in range(5)]
        enc_read, plain_read = statistics.median(enc_reads), statistics.median(plain_reads)

    fields = len(values)
    result = {
        "bench": "crypto",
        "rows": args.rows,
        "fields_per_row": fields,
        "encrypted_write_rows_per_s": round(args.rows / enc_write),
        "plain_write_rows_per_s": round(args.rows / plain_write),
        "write_ratio": round(enc_write / plain_write, 2),
        "encrypted_read_rows_per_s": round(args.rows / enc_read),
        "plain_read_rows_per_s": round(args.rows / plain_read),
        "read_ratio": round(enc_read / plain_read, 2),
        "encrypted_read_us_per_field": round(enc_read / (args.rows * fields) * 1e6, 1),
    }
    print(
        f"write: encrypted {result['encrypted_write_rows_per_s']} rows/s, "
        f"plain {result['plain_write_rows_per_s']} rows/s, ratio {result['write_ratio']}"
    )
    print(
        f"read:  encrypted {result['encrypted_read_rows_per_s']} rows/s, "
        f"plain {result['plain_read_rows_per_s']} rows/s, ratio {result['read_ratio']}"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
