//! The console's words in English and German, chosen per request (`?lang=`, then the language
//! cookie, then `Accept-Language`).
//!
//! It owns wording only.

/// A language the console speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    De,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::De => "de",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "en" => Some(Self::En),
            "de" => Some(Self::De),
            _ => None,
        }
    }

    /// The first of English or German an `Accept-Language` header names, else English.
    pub fn from_accept_language(header: &str) -> Self {
        header
            .split(',')
            .filter_map(|part| part.split(';').next())
            .map(|tag| tag.trim().to_ascii_lowercase())
            .find_map(|tag| match tag.split('-').next() {
                Some("de") => Some(Self::De),
                Some("en") => Some(Self::En),
                _ => None,
            })
            .unwrap_or(Self::En)
    }

    pub fn texts(self) -> &'static Texts {
        match self {
            Self::En => &EN,
            Self::De => &DE,
        }
    }
}

/// Every word a page shows.
pub struct Texts {
    pub console: &'static str,
    pub other_lang: &'static str,
    pub other_lang_code: &'static str,
    pub sign_in: &'static str,
    pub sign_in_intro: &'static str,
    pub credential: &'static str,
    pub sign_in_hint: &'static str,
    pub sign_out: &'static str,
    pub signed_in_as: &'static str,
    pub operator: &'static str,
    pub officer: &'static str,
    pub tenant_admin: &'static str,
    pub auditor: &'static str,
    pub forbidden: &'static str,
    pub forbidden_text: &'static str,
    pub not_found: &'static str,
    pub bad_form: &'static str,
    pub token_sent: &'static str,
    pub not_a_bearer: &'static str,
    pub api_refused: &'static str,
    pub nothing: &'static str,
    pub next_page: &'static str,
    pub trustee: &'static str,
    pub readiness: &'static str,
    pub sites: &'static str,
    pub capacity: &'static str,
    pub repair: &'static str,
    pub grants: &'static str,
    pub grants_note: &'static str,
    pub disclosures: &'static str,
    pub tenants: &'static str,
    pub quota: &'static str,
    pub access_keys: &'static str,
    pub your_grants: &'static str,
    pub your_log: &'static str,
    pub checkpoint: &'static str,
    pub log_entries: &'static str,
    pub operator_note: &'static str,
    pub verify_title: &'static str,
    pub verify_intro: &'static str,
    pub pinned_key: &'static str,
    pub pinned_key_warning: &'static str,
    pub kept_checkpoint: &'static str,
    pub kept_hint: &'static str,
    pub verify_run: &'static str,
    pub verify_all: &'static str,
    pub verify_one: &'static str,
    pub unpin: &'static str,
    pub index_col: &'static str,
    pub entry_col: &'static str,
    pub inclusion_col: &'static str,
    pub standalone_note: &'static str,
    pub no_script: &'static str,
    pub verify_ok: &'static str,
    pub verify_flagged: &'static str,
    pub verify_messages_note: &'static str,
}

pub static EN: Texts = Texts {
    console: "obhut console",
    other_lang: "Deutsch",
    other_lang_code: "de",
    sign_in: "Sign in",
    sign_in_intro: "Sign in with your obhut token. Your browser derives the admin bearer from it; the token itself is never sent.",
    credential: "Token (obt_…) or bearer (obb_…)",
    sign_in_hint: "Without JavaScript, paste the bearer that `obhut token bearer` prints.",
    sign_out: "Sign out",
    signed_in_as: "Signed in as",
    operator: "Operator",
    officer: "Officer",
    tenant_admin: "Tenant admin",
    auditor: "Auditor",
    forbidden: "Not for your role",
    forbidden_text: "This page belongs to another role; the admin API would refuse what it shows to you as well.",
    not_found: "No such page",
    bad_form: "The form's security token did not match (or the form came from another site). Reload the page and try again.",
    token_sent: "A token reached the server instead of a bearer: enable JavaScript so that the browser derives the bearer, or paste the bearer that `obhut token bearer` prints. Consider rotating that token.",
    not_a_bearer: "That is not an obhut bearer (obb_…).",
    api_refused: "The admin API refused",
    nothing: "Nothing to show.",
    next_page: "Next page",
    trustee: "Trustee",
    readiness: "Readiness of this gateway",
    sites: "Sites",
    capacity: "Capacity",
    repair: "Repair",
    grants: "Grants",
    grants_note: "Approve or deny with `obhut access approve|deny g-…`, which signs the decision with your own key.",
    disclosures: "Disclosure requests",
    tenants: "Tenants",
    quota: "Usage and quota",
    access_keys: "Access keys",
    your_grants: "Grants on your data",
    your_log: "Your log entries",
    checkpoint: "Newest checkpoint",
    log_entries: "Log entries",
    operator_note: "These pages show states and counts only: no tenant data, bucket or object names.",
    verify_title: "Verification in this browser",
    verify_intro: "This browser checks the log itself, trusting only the pinned key: the checkpoint's signature, that the log's hash tiles give the signed root, that the log only grew since the checkpoint kept here (or pasted below), and the inclusion of the entries shown.",
    pinned_key: "Pinned log key",
    pinned_key_warning: "Pinned in this browser on the first visit. If the log ever serves another key, that is flagged here and everything is still checked with the pinned key: compare it once with the key the trustee publishes.",
    kept_checkpoint: "Kept checkpoint (from your last visit, or paste one you kept)",
    kept_hint: "After a check that finds nothing wrong, the current checkpoint is kept here for the next visit.",
    verify_run: "Check again",
    verify_all: "Verify inclusion of all entries shown",
    verify_one: "Verify inclusion",
    unpin: "Forget the pinned key",
    index_col: "Index",
    entry_col: "Entry",
    inclusion_col: "Inclusion",
    standalone_note: "This page is served by the provider's gateway, whose script could claim anything: for an answer that does not rest on it, use the standalone verifier (docs/verifier.md), a file you keep and open offline.",
    no_script: "Verification needs JavaScript.",
    verify_ok: "Verified: nothing wrong found.",
    verify_flagged: "FLAGGED: checks failed. Do not rely on this log until the trustee explains.",
    verify_messages_note: "The checks' messages are in English.",
};

pub static DE: Texts = Texts {
    console: "obhut-Konsole",
    other_lang: "English",
    other_lang_code: "en",
    sign_in: "Anmelden",
    sign_in_intro: "Melden Sie sich mit Ihrem obhut-Token an. Ihr Browser leitet daraus den Admin-Bearer ab; das Token selbst wird nie gesendet.",
    credential: "Token (obt_…) oder Bearer (obb_…)",
    sign_in_hint: "Ohne JavaScript fügen Sie den Bearer ein, den `obhut token bearer` ausgibt.",
    sign_out: "Abmelden",
    signed_in_as: "Angemeldet als",
    operator: "Betrieb",
    officer: "Treuhand-Beauftragte",
    tenant_admin: "Mandanten-Admin",
    auditor: "Prüfung",
    forbidden: "Nicht für Ihre Rolle",
    forbidden_text: "Diese Seite gehört zu einer anderen Rolle; auch die Admin-API würde Ihnen ihren Inhalt verweigern.",
    not_found: "Seite nicht gefunden",
    bad_form: "Das Sicherheitsmerkmal des Formulars stimmt nicht (oder das Formular kam von einer anderen Website). Laden Sie die Seite neu und versuchen Sie es erneut.",
    token_sent: "Beim Server kam ein Token statt eines Bearers an: Aktivieren Sie JavaScript, damit der Browser den Bearer ableitet, oder fügen Sie den Bearer ein, den `obhut token bearer` ausgibt. Erwägen Sie, dieses Token zu ersetzen.",
    not_a_bearer: "Das ist kein obhut-Bearer (obb_…).",
    api_refused: "Die Admin-API verweigerte",
    nothing: "Nichts anzuzeigen.",
    next_page: "Nächste Seite",
    trustee: "Treuhänder",
    readiness: "Bereitschaft dieses Gateways",
    sites: "Standorte",
    capacity: "Kapazität",
    repair: "Reparatur",
    grants: "Zugriffsfreigaben",
    grants_note: "Genehmigen oder ablehnen mit `obhut access approve|deny g-…`, das die Entscheidung mit Ihrem eigenen Schlüssel signiert.",
    disclosures: "Herausgabeersuchen",
    tenants: "Mandanten",
    quota: "Belegung und Kontingent",
    access_keys: "Zugangsschlüssel",
    your_grants: "Freigaben auf Ihre Daten",
    your_log: "Ihre Protokolleinträge",
    checkpoint: "Neuester Prüfpunkt",
    log_entries: "Protokolleinträge",
    operator_note: "Diese Seiten zeigen nur Zustände und Zahlen: keine Mandantendaten, keine Bucket- oder Objektnamen.",
    verify_title: "Prüfung in diesem Browser",
    verify_intro: "Dieser Browser prüft das Protokoll selbst und vertraut nur dem gemerkten Schlüssel: die Signatur des Prüfpunkts, dass die Hash-Kacheln des Protokolls die signierte Wurzel ergeben, dass das Protokoll seit dem hier gemerkten (oder unten eingefügten) Prüfpunkt nur gewachsen ist, und die Aufnahme der angezeigten Einträge.",
    pinned_key: "Gemerkter Protokollschlüssel",
    pinned_key_warning: "Beim ersten Besuch in diesem Browser gemerkt. Liefert das Protokoll je einen anderen Schlüssel, wird das hier gemeldet und weiterhin mit dem gemerkten Schlüssel geprüft: vergleichen Sie ihn einmal mit dem Schlüssel, den der Treuhänder veröffentlicht.",
    kept_checkpoint: "Gemerkter Prüfpunkt (vom letzten Besuch, oder fügen Sie einen ein)",
    kept_hint: "Nach einer Prüfung ohne Befund wird der aktuelle Prüfpunkt hier für den nächsten Besuch gemerkt.",
    verify_run: "Erneut prüfen",
    verify_all: "Aufnahme aller angezeigten Einträge prüfen",
    verify_one: "Aufnahme prüfen",
    unpin: "Gemerkten Schlüssel vergessen",
    index_col: "Index",
    entry_col: "Eintrag",
    inclusion_col: "Aufnahme",
    standalone_note: "Diese Seite liefert das Gateway des Anbieters, dessen Skript alles behaupten könnte: für eine Antwort, die nicht darauf beruht, nutzen Sie den eigenständigen Prüfer (docs/verifier.md), eine Datei, die Sie aufbewahren und offline öffnen.",
    no_script: "Die Prüfung braucht JavaScript.",
    verify_ok: "Geprüft: nichts Auffälliges gefunden.",
    verify_flagged: "BEANSTANDET: Prüfungen sind fehlgeschlagen. Verlassen Sie sich nicht auf dieses Protokoll, bis der Treuhänder es erklärt.",
    verify_messages_note: "Die Meldungen der Prüfungen sind englisch.",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_the_first_known_language() {
        assert_eq!(
            Lang::from_accept_language("de-DE,de;q=0.9,en;q=0.8"),
            Lang::De
        );
        assert_eq!(
            Lang::from_accept_language("fr-FR, en-GB;q=0.8, de;q=0.5"),
            Lang::En
        );
        assert_eq!(Lang::from_accept_language("fr"), Lang::En);
        assert_eq!(Lang::from_accept_language(""), Lang::En);
    }
}
