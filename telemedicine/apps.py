from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TelemedicineConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "telemedicine"
    verbose_name = _("Telemedicine")

    def ready(self) -> None:
        # Scheduling's hooks: a video appointment gets its room when booked and loses it
        # when cancelled; its page shows a "Video consultation" section. Scheduling
        # never imports telemedicine.
        from telemedicine import sections_video, tasks_video  # noqa: F401 - registers tasks

        sections_video.connect()
