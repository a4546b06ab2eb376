"""Legal-form words removed from the end of company names before they are compared.

Written as people write them; ``normalize_name`` folds each form the same way it folds
a name, so "S.p.A.", "SpA" and "S. p. A." need one entry. Only trailing forms are
removed, because many short forms ("SA", "AB", "AS", "Co") are also ordinary words
or whole names at the start of a name (SAS Institute).
"""

LEGAL_FORMS: tuple[str, ...] = (
    # English-speaking countries
    "Inc", "Incorporated", "Corp", "Corporation", "Co", "Company", "& Co", "and Company",
    "LLC", "PLLC", "Ltd", "Limited", "LLP", "LP", "PLC",
    "Pty", "Pte", "Pvt", "Private Limited", "Sdn Bhd", "Bhd", "Berhad", "Tbk",
    # German-speaking countries
    "GmbH", "mbH", "gGmbH", "AG", "KG", "KGaA", "OHG", "GbR", "UG", "haftungsbeschränkt",
    "e.K.", "e.V.", "SE", "Aktiengesellschaft", "Kommanditgesellschaft",
    "Gesellschaft mit beschränkter Haftung",
    # French, Belgian, Swiss
    "SA", "SAS", "SASU", "SARL", "EURL", "SNC", "SCA", "Cie", "et Cie", "Société Anonyme",
    "Société par actions simplifiée", "SPRL", "BVBA",
    # Italian
    "SpA", "Srl", "Srls", "SApA", "Società per Azioni", "Società a responsabilità limitata",
    # Spanish, Portuguese, Latin American
    "SL", "SLU", "SAU", "Ltda", "Limitada", "S/A", "Cía", "Sociedad Anónima",
    "Sociedad Limitada", "de CV", "de RL", "SAB", "SAPI", "EIRELI", "Lda",
    # Dutch
    "BV", "NV", "VOF", "Besloten Vennootschap", "Naamloze Vennootschap",
    # Nordic
    "AB", "publ", "Aktiebolag", "Oy", "Oyj", "AS", "ASA", "A/S", "ApS", "A.m.b.A.",
    "hf", "ehf",
    # Central and Eastern Europe
    "Sp. z o.o.", "Sp.j.", "Sp.k.", "s.r.o.", "a.s.", "d.o.o.", "d.d.", "Kft", "Zrt", "Nyrt",
    "OOO", "ZAO", "OAO", "PAO", "SRL",
    # Japanese
    "KK", "Kabushiki Kaisha", "Kabushiki Gaisha", "GK", "Godo Kaisha", "Yugen Kaisha",
)
