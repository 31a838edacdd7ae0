"""The first published version of each consent text."""

from django.db import migrations

from accounts.consent_texts import TEXTS


def publish(apps, schema_editor):
    ConsentText = apps.get_model("accounts", "ConsentText")
    for kind, (title_ru, title_en, body_ru, body_en) in TEXTS.items():
        ConsentText.objects.get_or_create(
            kind=kind, version=1,
            defaults={"title_ru": title_ru, "title_en": title_en, "body_ru": body_ru, "body_en": body_en},
        )


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial")]
    operations = [migrations.RunPython(publish, migrations.RunPython.noop)]
