/* profile.c: the built-in certificate profiles, their name tables, and
 * applying a profile to a certificate under construction. A CSR only
 * contributes the names the profile allows; every extension and the
 * validity come from the profile. */
#include "config.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/asn1.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "hsmca/clock.h"
#include "hsmca/csr.h"
#include "hsmca/profile.h"

#define DAY	(24 * 60 * 60)

/*
 * The built-ins. Values chosen for a device fleet:
 *
 * device   TLS client leaf of one device. One year: devices renew over EST
 *          long before expiry, and a short life bounds the damage of a key
 *          lost with a device. keyAgreement is included because EC device
 *          keys may do static ECDH in some IoT stacks. Subject: CN (the
 *          device id, required), O, OU and serialNumber (hardware serial).
 *          SAN dns and uri (e.g. a SPIFFE-style or urn: device id).
 * server   TLS server leaf, e.g. an IoT Edge hub or a gateway's local
 *          endpoint. TLS clients match the host name in the SAN only (RFC
 *          6125, CA/B forum), so a SAN is required and the CN optional.
 *          clientAuth as well: an edge hub also connects upstream.
 * edge-ca  the device CA of an edge gateway, which signs its own module
 *          and downstream leafs: short-lived (90 days, renewed
 *          automatically by IoT Edge), CA:TRUE with pathlen 0 so it cannot
 *          create further CAs, and no EKU (an EKU on a CA constrains its
 *          whole subtree in some verifiers).
 *
 * Every profile backdates notBefore by 5 minutes for devices whose
 * clocks run slightly behind.
 */
static const struct profile profile_builtins[PROFILE_BUILTIN_COUNT] = {
	{
		.name = NULL,	/* "device" */
		.validity = 365 * DAY,
		.backdate = 5 * 60,
		.key_usage = PROFILE_KU_DIGITAL_SIGNATURE |
		    PROFILE_KU_KEY_AGREEMENT,
		.ext_key_usage = PROFILE_EKU_CLIENT_AUTH,
		.is_ca = 0,
		.pathlen = -1,
		.subject_allowed = PROFILE_SUBJ_CN | PROFILE_SUBJ_O |
		    PROFILE_SUBJ_OU | PROFILE_SUBJ_SERIAL,
		.require_cn = 1,
		.san_allowed = PROFILE_SAN_DNS | PROFILE_SAN_URI,
		.require_san = 0,
	},
	{
		.name = NULL,	/* "server" */
		.validity = 365 * DAY,
		.backdate = 5 * 60,
		.key_usage = PROFILE_KU_DIGITAL_SIGNATURE |
		    PROFILE_KU_KEY_ENCIPHERMENT,
		.ext_key_usage = PROFILE_EKU_SERVER_AUTH |
		    PROFILE_EKU_CLIENT_AUTH,
		.is_ca = 0,
		.pathlen = -1,
		.subject_allowed = PROFILE_SUBJ_CN | PROFILE_SUBJ_O |
		    PROFILE_SUBJ_OU,
		.require_cn = 0,
		.san_allowed = PROFILE_SAN_DNS | PROFILE_SAN_IP,
		.require_san = 1,
	},
	{
		.name = NULL,	/* "edge-ca" */
		.validity = 90 * DAY,
		.backdate = 5 * 60,
		.key_usage = PROFILE_KU_KEY_CERT_SIGN | PROFILE_KU_CRL_SIGN |
		    PROFILE_KU_DIGITAL_SIGNATURE,
		.ext_key_usage = 0,
		.is_ca = 1,
		.pathlen = 0,
		.subject_allowed = PROFILE_SUBJ_CN | PROFILE_SUBJ_O |
		    PROFILE_SUBJ_OU,
		.require_cn = 1,
		.san_allowed = 0,
		.require_san = 0,
	},
};
static const char *const profile_builtin_names[PROFILE_BUILTIN_COUNT] = {
	"device", "server", "edge-ca",
};

/* Name tables, in the order names are printed. */
struct profile_name {
	const char	*name;
	unsigned int	 bit;
	int		 nid;	/* OpenSSL NID where one applies, else 0 */
};

static const struct profile_name ku_names[] = {
	{ "digitalSignature",	PROFILE_KU_DIGITAL_SIGNATURE,	0 },
	{ "nonRepudiation",	PROFILE_KU_NON_REPUDIATION,	0 },
	{ "keyEncipherment",	PROFILE_KU_KEY_ENCIPHERMENT,	0 },
	{ "dataEncipherment",	PROFILE_KU_DATA_ENCIPHERMENT,	0 },
	{ "keyAgreement",	PROFILE_KU_KEY_AGREEMENT,	0 },
	{ "keyCertSign",	PROFILE_KU_KEY_CERT_SIGN,	0 },
	{ "cRLSign",		PROFILE_KU_CRL_SIGN,		0 },
	{ NULL, 0, 0 }
};

static const struct profile_name eku_names[] = {
	{ "serverAuth",		PROFILE_EKU_SERVER_AUTH,	NID_server_auth },
	{ "clientAuth",		PROFILE_EKU_CLIENT_AUTH,	NID_client_auth },
	{ "emailProtection",	PROFILE_EKU_EMAIL_PROTECTION,	NID_email_protect },
	{ "codeSigning",	PROFILE_EKU_CODE_SIGNING,	NID_code_sign },
	{ "OCSPSigning",	PROFILE_EKU_OCSP_SIGNING,	NID_OCSP_sign },
	{ "timeStamping",	PROFILE_EKU_TIME_STAMPING,	NID_time_stamp },
	{ NULL, 0, 0 }
};

/* nid here is the GENERAL_NAME type. */
static const struct profile_name san_names[] = {
	{ "dns",	PROFILE_SAN_DNS,	GEN_DNS },
	{ "ip",		PROFILE_SAN_IP,		GEN_IPADD },
	{ "uri",	PROFILE_SAN_URI,	GEN_URI },
	{ "email",	PROFILE_SAN_EMAIL,	GEN_EMAIL },
	{ NULL, 0, 0 }
};

static const struct profile_name subj_names[] = {
	{ "CN",			PROFILE_SUBJ_CN,	NID_commonName },
	{ "O",			PROFILE_SUBJ_O,		NID_organizationName },
	{ "OU",			PROFILE_SUBJ_OU,	NID_organizationalUnitName },
	{ "C",			PROFILE_SUBJ_C,		NID_countryName },
	{ "ST",			PROFILE_SUBJ_ST,	NID_stateOrProvinceName },
	{ "L",			PROFILE_SUBJ_L,		NID_localityName },
	{ "serialNumber",	PROFILE_SUBJ_SERIAL,	NID_serialNumber },
	{ NULL, 0, 0 }
};

void
profile_builtin(int idx, struct profile *out)
{
	if (idx < 0 || idx >= PROFILE_BUILTIN_COUNT) {
		memset(out, 0, sizeof(*out));
		out->pathlen = -1;
		return;
	}
	*out = profile_builtins[idx];
	out->name = strdup(profile_builtin_names[idx]);	/* NULL if no memory */
}

void
profile_free_fields(struct profile *p)
{
	if (p == NULL)
		return;
	free(p->name);
	p->name = NULL;
	NAME_CONSTRAINTS_free(p->excluded);
	p->excluded = NULL;
}

int
profile_copy(struct profile *dst, const struct profile *src)
{
	NAME_CONSTRAINTS *nc = NULL;
	char *name = NULL;

	if ((src->name != NULL && (name = strdup(src->name)) == NULL) ||
	    (src->excluded != NULL && (nc = ASN1_item_dup(
	    ASN1_ITEM_rptr(NAME_CONSTRAINTS), src->excluded)) == NULL)) {
		free(name);
		return HSMCA_ERR_ALLOC;
	}
	*dst = *src;
	dst->name = name;
	dst->excluded = nc;
	return 0;
}

int
profile_exclude_names(struct profile *p, const GENERAL_NAMES *names,
    struct hsmca_err *e)
{
	GENERAL_SUBTREE *t = NULL;
	unsigned char buf[32];
	const GENERAL_NAME *gn;
	ASN1_OCTET_STRING *ip;
	int i, len = 0;

	if (p->excluded == NULL &&
	    ((p->excluded = NAME_CONSTRAINTS_new()) == NULL ||
	    (p->excluded->excludedSubtrees = sk_GENERAL_SUBTREE_new_null())
	    == NULL))
		goto nomem;
	for (i = 0; i < sk_GENERAL_NAME_num(names); i++) {
		gn = sk_GENERAL_NAME_value(names, i);
		if (gn->type != GEN_DNS && gn->type != GEN_IPADD)
			continue;
		if (gn->type == GEN_IPADD &&
		    (len = ASN1_STRING_length(gn->d.iPAddress)) != 4 &&
		    len != 16)
			continue;
		/* A new subtree comes with an empty base of its own. */
		if ((t = GENERAL_SUBTREE_new()) == NULL)
			goto nomem;
		GENERAL_NAME_free(t->base);
		if ((t->base = GENERAL_NAME_dup(gn)) == NULL)
			goto nomem;
		/* An address subtree is the address and its mask (RFC 5280
		 * 4.2.1.10): this one address only. */
		if (gn->type == GEN_IPADD) {
			ip = t->base->d.iPAddress;
			memcpy(buf, ASN1_STRING_get0_data(ip), (size_t)len);
			memset(buf + len, 0xff, (size_t)len);
			if (!ASN1_OCTET_STRING_set(ip, buf, len * 2))
				goto nomem;
		}
		if (!sk_GENERAL_SUBTREE_push(p->excluded->excludedSubtrees, t))
			goto nomem;
		t = NULL;
	}
	return 0;
nomem:
	GENERAL_SUBTREE_free(t);
	return err_set(e, HSMCA_ERR_ALLOC, "out of memory");
}

static int
names_parse(const struct profile_name *t, const char *name, unsigned int *bit)
{
	if (name == NULL)
		return -1;
	for (; t->name != NULL; t++) {
		if (strcmp(t->name, name) == 0) {
			*bit = t->bit;
			return 0;
		}
	}
	return -1;
}

/* "a, b" of the table names whose bits are in mask; "" for none, NULL if
 * buf is too small (buf then holds ""). */
static char *
names_format(const struct profile_name *t, unsigned int mask, char *buf,
    size_t len)
{
	size_t off = 0, n;

	if (buf == NULL || len == 0)
		return NULL;
	buf[0] = '\0';
	for (; t->name != NULL; t++) {
		if ((mask & t->bit) == 0)
			continue;
		n = strlen(t->name) + (off > 0 ? 2 : 0);
		if (off + n + 1 > len) {
			buf[0] = '\0';
			return NULL;
		}
		snprintf(buf + off, len - off, "%s%s", off > 0 ? ", " : "",
		    t->name);
		off += n;
	}
	return buf;
}

int
profile_ku_parse(const char *name, unsigned int *bit)
{
	return names_parse(ku_names, name, bit);
}

int
profile_eku_parse(const char *name, unsigned int *bit)
{
	return names_parse(eku_names, name, bit);
}

int
profile_san_parse(const char *name, unsigned int *bit)
{
	return names_parse(san_names, name, bit);
}

int
profile_subj_parse(const char *name, unsigned int *bit)
{
	return names_parse(subj_names, name, bit);
}

char *
profile_ku_format(unsigned int mask, char *buf, size_t len)
{
	return names_format(ku_names, mask, buf, len);
}

char *
profile_eku_format(unsigned int mask, char *buf, size_t len)
{
	return names_format(eku_names, mask, buf, len);
}

char *
profile_san_format(unsigned int mask, char *buf, size_t len)
{
	return names_format(san_names, mask, buf, len);
}

char *
profile_subj_format(unsigned int mask, char *buf, size_t len)
{
	return names_format(subj_names, mask, buf, len);
}

/* How a SAN type reads in a message: what `openssl x509 -text` shows. */
static const char *
san_type_label(int type)
{
	switch (type) {
	case GEN_DNS:
		return "DNS";
	case GEN_IPADD:
		return "IP";
	case GEN_URI:
		return "URI";
	case GEN_EMAIL:
		return "email";
	case GEN_OTHERNAME:
		return "otherName";
	case GEN_X400:
		return "X400Name";
	case GEN_DIRNAME:
		return "DirName";
	case GEN_EDIPARTY:
		return "EdiPartyName";
	case GEN_RID:
		return "Registered ID";
	default:
		return "unknown";
	}
}

static const char *
pname(const struct profile *p)
{
	return p->name != NULL ? p->name : "(unnamed)";
}

/* The checks of profile_check_csr, on a SAN already extracted (may be
 * NULL). */
static int
check_csr(const struct profile *p, const struct csr *csr,
    const GENERAL_NAMES *san, struct hsmca_err *e)
{
	const X509_NAME *subj;
	const X509_NAME_ENTRY *ne;
	const struct profile_name *t;
	const GENERAL_NAME *gn;
	char label[80];
	int i, n, nid, ncn = 0, nsan;

	if (p == NULL || csr == NULL || csr->req == NULL)
		return err_set(e, HSMCA_ERR_ARG, "profile_check_csr: no %s",
		    p == NULL ? "profile" : "request");

	if ((subj = X509_REQ_get_subject_name(csr->req)) == NULL)
		return err_set(e, HSMCA_ERR_POLICY, "CSR has no subject");
	n = X509_NAME_entry_count(subj);
	for (i = 0; i < n; i++) {
		const ASN1_STRING *v;

		ne = X509_NAME_get_entry(subj, i);
		nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(ne));
		for (t = subj_names; t->name != NULL; t++)
			if (t->nid == nid)
				break;
		if (t->name == NULL) {
			OBJ_obj2txt(label, sizeof(label),
			    X509_NAME_ENTRY_get_object(ne), 0);
			return err_set(e, HSMCA_ERR_POLICY,
			    "subject attribute %s not allowed by profile %s",
			    label, pname(p));
		}
		if ((p->subject_allowed & t->bit) == 0)
			return err_set(e, HSMCA_ERR_POLICY,
			    "subject attribute %s not allowed by profile %s",
			    t->name, pname(p));
		v = X509_NAME_ENTRY_get_data(ne);
		if (v == NULL || ASN1_STRING_length(v) == 0)
			return err_set(e, HSMCA_ERR_POLICY,
			    "subject attribute %s is empty", t->name);
		if (nid == NID_commonName)
			ncn++;
	}
	/* One CN: it names the device, and two would make that ambiguous. */
	if (ncn > 1)
		return err_set(e, HSMCA_ERR_POLICY,
		    "CSR subject has %d CN attributes; profile %s allows one",
		    ncn, pname(p));
	if (p->require_cn && ncn == 0)
		return err_set(e, HSMCA_ERR_POLICY,
		    "CSR subject has no CN; profile %s requires one", pname(p));

	nsan = san != NULL ? sk_GENERAL_NAME_num(san) : 0;
	for (i = 0; i < nsan; i++) {
		gn = sk_GENERAL_NAME_value(san, i);
		for (t = san_names; t->name != NULL; t++)
			if (t->nid == gn->type)
				break;
		if (t->name == NULL || (p->san_allowed & t->bit) == 0)
			return err_set(e, HSMCA_ERR_POLICY,
			    "SAN type %s not allowed by profile %s",
			    san_type_label(gn->type), pname(p));
	}
	if (p->require_san && nsan == 0)
		return err_set(e, HSMCA_ERR_POLICY,
		    "CSR has no subjectAltName; profile %s requires one",
		    pname(p));
	/* RFC 5280 4.1.2.6: a certificate must name its subject somewhere. */
	if (n == 0 && nsan == 0)
		return err_set(e, HSMCA_ERR_POLICY,
		    "CSR has neither a subject nor a subjectAltName");

	if (csr_requests_ca(csr) && !p->is_ca)
		return err_set(e, HSMCA_ERR_POLICY,
		    "CSR asks for CA:TRUE; profile %s issues end-entity "
		    "certificates only", pname(p));
	return 0;
}

int
profile_check_csr(const struct profile *p, const struct csr *csr,
    struct hsmca_err *e)
{
	GENERAL_NAMES *san = NULL;
	int ret;

	if (csr != NULL && csr->req != NULL)
		san = csr_get_san(csr);
	ret = check_csr(p, csr, san, e);
	GENERAL_NAMES_free(san);
	return ret;
}

/* ASN1_TIME to epoch seconds; -1 if unreadable. */
static int
asn1_time_get(const ASN1_TIME *t, time_t *out)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	if (t == NULL || !ASN1_TIME_to_tm(t, &tm))
		return -1;
	if ((*out = timegm(&tm)) == (time_t)-1)
		return -1;
	return 0;
}

/* Replace (or add) the extension nid of x with value. */
static int
ext_set(X509 *x, int nid, void *value, int crit, struct hsmca_err *e)
{
	int loc;

	while ((loc = X509_get_ext_by_NID(x, nid, -1)) >= 0)
		X509_EXTENSION_free(X509_delete_ext(x, loc));
	if (value == NULL)
		return 0;
	if (X509_add1_ext_i2d(x, nid, value, crit, X509V3_ADD_APPEND) != 1)
		return err_set_ssl(e, HSMCA_ERR_INTERNAL, "cannot add %s",
		    OBJ_nid2sn(nid));
	return 0;
}

static int
set_validity(const struct profile *p, X509 *cert, const X509 *issuer,
    time_t now, struct hsmca_err *e)
{
	ASN1_TIME *t = NULL;
	time_t inb, ina, nb, na;
	char b1[32], b2[32];
	int ret = HSMCA_ERR_INTERNAL;

	if (p->validity <= 0 || p->backdate < 0) {
		ret = err_set(e, HSMCA_ERR_ARG, "profile %s: validity must be "
		    "positive and backdate not negative", pname(p));
		goto out;
	}
	if (asn1_time_get(X509_get0_notBefore(issuer), &inb) == -1 ||
	    asn1_time_get(X509_get0_notAfter(issuer), &ina) == -1) {
		ret = err_set(e, HSMCA_ERR_CA_STATE,
		    "issuer certificate has an unreadable validity period");
		goto out;
	}
	if (now < inb) {
		ret = err_set(e, HSMCA_ERR_CA_STATE, "issuer certificate is "
		    "not valid before %s (now %s); check the clock or the CA "
		    "generation", clock_format(inb, b1, sizeof(b1)),
		    clock_format(now, b2, sizeof(b2)));
		goto out;
	}
	if (now >= ina) {
		ret = err_set(e, HSMCA_ERR_CA_STATE, "issuer certificate "
		    "expired at %s (now %s); activate a newer CA generation",
		    clock_format(ina, b1, sizeof(b1)),
		    clock_format(now, b2, sizeof(b2)));
		goto out;
	}

	/* Backdated for clock skew, but never before the issuer existed:
	 * a certificate's validity lies within its issuer's. */
	nb = now - (time_t)p->backdate;
	if (nb < inb)
		nb = inb;
	/* A certificate never outlives its issuer. */
	if ((int64_t)p->validity >= (int64_t)(ina - now))
		na = ina;
	else
		na = now + (time_t)p->validity;

	if ((t = ASN1_TIME_set(NULL, nb)) == NULL ||
	    !X509_set1_notBefore(cert, t)) {
		ret = err_set_ssl(e, HSMCA_ERR_INTERNAL, "cannot set notBefore");
		goto out;
	}
	ASN1_TIME_free(t);
	if ((t = ASN1_TIME_set(NULL, na)) == NULL ||
	    !X509_set1_notAfter(cert, t)) {
		ret = err_set_ssl(e, HSMCA_ERR_INTERNAL, "cannot set notAfter");
		goto out;
	}
	ret = 0;
out:
	ASN1_TIME_free(t);
	return ret;
}

static int
set_basic_constraints(const struct profile *p, X509 *cert,
    struct hsmca_err *e)
{
	BASIC_CONSTRAINTS *bc = NULL;
	int ret = HSMCA_ERR_INTERNAL;

	if ((bc = BASIC_CONSTRAINTS_new()) == NULL) {
		ret = err_set(e, HSMCA_ERR_ALLOC, "out of memory");
		goto out;
	}
	/* A leaf gets cA FALSE, which DER encodes as an empty SEQUENCE. */
	bc->ca = p->is_ca ? 0xff : 0;
	if (p->is_ca && p->pathlen >= 0) {
		if ((bc->pathlen = ASN1_INTEGER_new()) == NULL ||
		    !ASN1_INTEGER_set(bc->pathlen, p->pathlen)) {
			ret = err_set(e, HSMCA_ERR_ALLOC, "out of memory");
			goto out;
		}
	}
	ret = ext_set(cert, NID_basic_constraints, bc, 1, e);
out:
	BASIC_CONSTRAINTS_free(bc);
	return ret;
}

static int
set_key_usage(const struct profile *p, X509 *cert, struct hsmca_err *e)
{
	ASN1_BIT_STRING *ku = NULL;
	int ret = HSMCA_ERR_INTERNAL, n;

	if (p->key_usage == 0) {
		ret = err_set(e, HSMCA_ERR_ARG, "profile %s sets no key usage",
		    pname(p));
		goto out;
	}
	if ((ku = ASN1_BIT_STRING_new()) == NULL) {
		ret = err_set(e, HSMCA_ERR_ALLOC, "out of memory");
		goto out;
	}
	/* Named bit n of KeyUsage is 0x80 >> n in OpenSSL's KU_* values. */
	for (n = 0; n < 8; n++) {
		if ((p->key_usage & (0x80u >> n)) != 0 &&
		    !ASN1_BIT_STRING_set_bit(ku, n, 1)) {
			ret = err_set(e, HSMCA_ERR_ALLOC, "out of memory");
			goto out;
		}
	}
	ret = ext_set(cert, NID_key_usage, ku, 1, e);
out:
	ASN1_BIT_STRING_free(ku);
	return ret;
}

static int
set_ext_key_usage(const struct profile *p, X509 *cert, struct hsmca_err *e)
{
	EXTENDED_KEY_USAGE *eku = NULL;
	const struct profile_name *t;
	int ret = HSMCA_ERR_INTERNAL;

	if (p->ext_key_usage == 0) {
		ret = ext_set(cert, NID_ext_key_usage, NULL, 0, e);
		goto out;
	}
	if ((eku = sk_ASN1_OBJECT_new_null()) == NULL) {
		ret = err_set(e, HSMCA_ERR_ALLOC, "out of memory");
		goto out;
	}
	for (t = eku_names; t->name != NULL; t++) {
		ASN1_OBJECT *obj;

		if ((p->ext_key_usage & t->bit) == 0)
			continue;
		if ((obj = OBJ_nid2obj(t->nid)) == NULL ||
		    !sk_ASN1_OBJECT_push(eku, obj)) {
			ASN1_OBJECT_free(obj);
			ret = err_set(e, HSMCA_ERR_ALLOC, "out of memory");
			goto out;
		}
	}
	ret = ext_set(cert, NID_ext_key_usage, eku, 0, e);
out:
	sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
	return ret;
}

int
profile_apply(const struct profile *p, const struct csr *csr, X509 *cert,
    const X509 *issuer, time_t now, struct hsmca_err *e)
{
	GENERAL_NAMES *san = NULL;
	const X509_NAME *subj;
	int ret = HSMCA_ERR_INTERNAL, empty;

	if (cert == NULL || issuer == NULL) {
		ret = err_set(e, HSMCA_ERR_ARG, "profile_apply: no %s",
		    cert == NULL ? "certificate" : "issuer");
		goto out;
	}
	if (p->is_ca && p->excluded_err[0] != '\0') {
		ret = err_set(e, HSMCA_ERR_CONFIG, "profile %s: %s; a CA "
		    "certificate is issued only with the appliance's names "
		    "excluded", pname(p), p->excluded_err);
		goto out;
	}
	if (csr != NULL && csr->req != NULL)
		san = csr_get_san(csr);
	if ((ret = check_csr(p, csr, san, e)) != 0)
		goto out;
	if ((ret = set_validity(p, cert, issuer, now, e)) != 0)
		goto out;

	/* Every attribute passed the check: the subject is the CSR's, in
	 * its order and encoding. */
	subj = X509_REQ_get_subject_name(csr->req);
	if (!X509_set_subject_name(cert, subj)) {
		ret = err_set_ssl(e, HSMCA_ERR_INTERNAL, "cannot set subject");
		goto out;
	}
	/* RFC 5280 4.2.1.6: critical when the subject is empty. */
	empty = X509_NAME_entry_count(subj) == 0;
	if (san != NULL && sk_GENERAL_NAME_num(san) == 0) {
		GENERAL_NAMES_free(san);
		san = NULL;
	}
	if ((ret = ext_set(cert, NID_subject_alt_name, san, empty, e)) != 0)
		goto out;
	if ((ret = set_basic_constraints(p, cert, e)) != 0 ||
	    (ret = set_key_usage(p, cert, e)) != 0 ||
	    (ret = set_ext_key_usage(p, cert, e)) != 0)
		goto out;
	/* Critical, as RFC 5280 4.2.1.10 requires of a CA. */
	if (p->is_ca && p->excluded != NULL &&
	    sk_GENERAL_SUBTREE_num(p->excluded->excludedSubtrees) > 0 &&
	    (ret = ext_set(cert, NID_name_constraints, p->excluded, 1, e))
	    != 0)
		goto out;
	ret = 0;
out:
	GENERAL_NAMES_free(san);
	return ret;
}
