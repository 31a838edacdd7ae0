"""Move every encrypted value to the current key after a key rotation.

Rotation: put the new SECRET_KEY (or a new first SALT_KEY) in place, keep the old
one in SECRET_KEY_FALLBACKS (or later in SALT_KEY), run this command, then drop the
old key. Rows already on the current key are skipped, so the command is resumable:
stop it at any point and run it again. Each batch commits on its own.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, models, transaction

from clinic.crypto import (
    BlindIndexField,
    StrictEncryptedMixin,
    UndecryptableValue,
    decrypt_text,
    is_current,
    rotate_token,
)
from clinic.files import EncryptedFileSystemStorage


def encrypted_models() -> Iterator[
    tuple[type[models.Model], list[models.Field], list[BlindIndexField]]
]:
    for model in apps.get_models():
        fields = [f for f in model._meta.concrete_fields if isinstance(f, StrictEncryptedMixin)]
        indexes = [f for f in model._meta.concrete_fields if isinstance(f, BlindIndexField)]
        if fields:
            yield model, fields, indexes


class Command(BaseCommand):
    help = (
        "Re-encrypt every encrypted column, file and MFA secret with the current key (resumable)."
    )

    def add_arguments(self, parser):  # noqa: ANN001, ANN201
        parser.add_argument("--batch-size", type=int, default=500)
        parser.add_argument(
            "--blind-indexes",
            action="store_true",
            help="Also recompute blind indexes (after changing BLIND_INDEX_KEY).",
        )

    def handle(self, *args, batch_size: int, blind_indexes: bool, **options):  # noqa: ANN001, ANN201
        total = 0
        try:
            for model, fields, indexes in encrypted_models():
                count = self._rotate_table(
                    model, fields, indexes if blind_indexes else [], batch_size
                )
                total += count
                self.stdout.write(f"{model._meta.label}: {count} rows rewritten")
            total += self._rotate_mfa_secrets()
            total += self._rotate_files()
        except UndecryptableValue as exc:
            raise CommandError(
                f"{exc} — is the old key still in SECRET_KEY_FALLBACKS / SALT_KEY?"
            ) from exc
        self.stdout.write(self.style.SUCCESS(f"Done: {total} values moved to the current key."))

    def _rotate_table(self, model, fields, indexes, batch_size: int) -> int:  # noqa: ANN001
        table = connection.ops.quote_name(model._meta.db_table)
        pk = connection.ops.quote_name(model._meta.pk.column)
        columns = [connection.ops.quote_name(f.column) for f in fields]
        by_source = {ix.source: ix for ix in indexes}
        last_pk = None
        rewritten = 0
        while True:
            with transaction.atomic(), connection.cursor() as cursor:
                where = f"WHERE {pk} > %s" if last_pk is not None else ""
                cursor.execute(
                    f"SELECT {pk}, {', '.join(columns)} FROM {table} {where} "  # noqa: S608
                    f"ORDER BY {pk} LIMIT %s FOR UPDATE",
                    [last_pk, batch_size] if last_pk is not None else [batch_size],
                )
                rows = cursor.fetchall()
                for row in rows:
                    updates: dict[str, str | None] = {}
                    for field, value in zip(fields, row[1:], strict=True):
                        if value and not is_current(value):
                            updates[field.column] = rotate_token(value)
                        if field.name in by_source:
                            index = by_source[field.name]
                            updates[index.column] = (
                                index.index_of(decrypt_text(value)) if value else None
                            )
                    if updates:
                        assignments = ", ".join(
                            f"{connection.ops.quote_name(c)} = %s" for c in updates
                        )
                        cursor.execute(
                            f"UPDATE {table} SET {assignments} WHERE {pk} = %s",  # noqa: S608
                            [*updates.values(), row[0]],
                        )
                        rewritten += 1
            if len(rows) < batch_size:
                return rewritten
            last_pk = rows[-1][0]

    def _rotate_mfa_secrets(self) -> int:
        from allauth.mfa.models import Authenticator

        rewritten = 0
        for authenticator in Authenticator.objects.select_for_update().iterator():
            with transaction.atomic():
                data = dict(authenticator.data)
                changed = False
                for key in ("secret", "seed"):
                    if isinstance(data.get(key), str) and not is_current(data[key]):
                        data[key] = rotate_token(data[key])
                        changed = True
                if changed:
                    Authenticator.objects.filter(pk=authenticator.pk).update(data=data)
                    rewritten += 1
        self.stdout.write(f"mfa.Authenticator: {rewritten} secrets rewritten")
        return rewritten

    def _rotate_files(self) -> int:
        rewritten = 0
        for model in apps.get_models():
            for field in model._meta.concrete_fields:
                if isinstance(field, models.FileField) and isinstance(
                    field.storage, EncryptedFileSystemStorage
                ):
                    names = model.objects.exclude(**{field.name: ""}).values_list(
                        field.name, flat=True
                    )
                    for name in names.iterator():
                        rewritten += int(field.storage.rotate(name))
        self.stdout.write(f"encrypted files: {rewritten} rewritten")
        return rewritten
