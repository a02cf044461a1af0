"""acme: an ldap2ftrack rule module in Python (the template `rules new --lang python` copies)."""
from ldap2ftrack_rules import Rules, Sync, config, export, log, names


class Acme(Rules):
    name = "acme"
    version = "0.1.0"
    description = "Lower-case usernames; username@email_domain for users without a mail"

    email_domain = config.string(description="Mail domain for users without a mail attribute")
    reads = ["uid"]  # the entry attributes the hooks read; the host passes only these

    def transform_user(self, entry, proposal):
        if not isinstance(proposal, Sync):
            return proposal
        user = proposal.user
        user.username = names.normalize_username(entry.first("uid") or user.username)
        if user.email is None and self.email_domain:
            user.email = f"{user.username}@{self.email_domain}"
        log.debug(f"{entry.dn} -> {user.username}")
        return proposal


Hooks = export(Acme)  # what componentize-py exports: the SDK's WIT glue around Acme
