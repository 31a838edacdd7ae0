"""The first published wording of each consent (version 1), in Russian and English."""

TEXTS = {
    "health_data": (
        "Согласие на обработку персональных данных и данных о здоровье",
        "Consent to the processing of personal and health data",
        "Я даю согласие клинике на обработку моих персональных данных, включая сведения о "
        "состоянии здоровья, в целях оказания медицинской помощи в соответствии с "
        "Федеральными законами № 152-ФЗ и № 323-ФЗ. Медицинская документация хранится 25 лет. "
        "Я могу отозвать согласие в любой момент на странице «Согласия».",
        "I consent to the clinic processing my personal data, including data about my "
        "health, to provide medical care under Federal Laws 152-FZ and 323-FZ. Medical "
        "records are kept for 25 years. I may withdraw this consent at any time on the "
        "Consents page.",
    ),
    "telemedicine": (
        "Согласие на консультации с применением телемедицинских технологий",
        "Consent to telemedicine consultations",
        "Я согласен(на) получать консультации врача дистанционно по видеосвязи в соответствии "
        "с приказом Минздрава России № 965н. Я понимаю ограничения дистанционной "
        "консультации и то, что врач может рекомендовать очный приём.",
        "I agree to receive consultations remotely over video under Order 965n of the "
        "Russian Ministry of Health. I understand the limits of a remote consultation and "
        "that the doctor may recommend an in-person visit.",
    ),
    "mis_sharing": (
        "Согласие на передачу данных в медицинскую информационную систему",
        "Consent to sharing data with the medical information system",
        "Я согласен(на) на передачу моих данных о записях, визитах и результатах "
        "исследований в медицинскую информационную систему клиники.",
        "I agree to my appointments, visits and test results being shared with the "
        "clinic's medical information system.",
    ),
}
