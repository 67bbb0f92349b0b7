package alerts

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strings"
)

// DiscordHosts are the hosts an operator rule's webhook may point at without configuration.
var discordHosts = []string{"discord.com", "discordapp.com", "ptb.discord.com", "canary.discord.com"}

// CheckWebhook checks a webhook URL an operator gave a rule: the server will call it, so it must
// be an https Discord webhook (or on a host in allowed, from HELIX_ALERT_WEBHOOK_HOSTS), never an
// address literal, a private, loopback or link-local address, credentials or another port. The
// address a host resolves to is checked again when it is called (PublicAddress), since DNS can
// point anywhere.
func CheckWebhook(raw string, allowed []string) error {
	bad := func(why string) error { return fmt.Errorf("%w: webhook_url %s", ErrInvalid, why) }
	if len(raw) > 2048 {
		return bad("is too long")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return bad("is not a URL")
	}
	if u.Scheme != "https" {
		return bad("must be https")
	}
	if u.User != nil {
		return bad("must not carry credentials")
	}
	if p := u.Port(); p != "" && p != "443" {
		return bad("must use the default port")
	}
	host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	if _, err := netip.ParseAddr(host); err == nil || net.ParseIP(host) != nil {
		return bad("must name a host, not an address")
	}
	if !slices.Contains(discordHosts, host) && !slices.Contains(allowed, host) {
		return bad("must be a Discord webhook (https://discord.com/api/webhooks/...) or on a host allowed by HELIX_ALERT_WEBHOOK_HOSTS")
	}
	if slices.Contains(discordHosts, host) && !strings.HasPrefix(u.Path, "/api/webhooks/") {
		return bad("must be a Discord webhook URL (/api/webhooks/<id>/<token>)")
	}
	return nil
}

// PublicAddress reports whether an address may be called: not loopback, private, link-local
// (169.254.169.254, the instance metadata service, among them), multicast or unspecified.
func PublicAddress(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsValid() && !a.IsLoopback() && !a.IsPrivate() && !a.IsLinkLocalUnicast() && !a.IsLinkLocalMulticast() &&
		!a.IsMulticast() && !a.IsUnspecified() && !a.IsInterfaceLocalMulticast() &&
		!netip.MustParsePrefix("100.64.0.0/10").Contains(a) && // carrier-grade NAT
		!netip.MustParsePrefix("fc00::/7").Contains(a)
}
