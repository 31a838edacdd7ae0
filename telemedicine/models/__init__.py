"""Telemedicine's data: video consultations (`video`) and secure messaging (`messaging`)."""

from telemedicine.models.messaging import *  # noqa: F403
from telemedicine.models.video import *  # noqa: F403
