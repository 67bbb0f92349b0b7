package chatapi_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/helixhq/helix/shared/httpapi/chatapi"
)

// listAll pages through GET /chat/sessions with query and limit, following next_cursor, and
// returns the ids in order and the size of each page.
func (e *env) listAll(t *testing.T, tok, query string, limit int) (ids []string, pages []int) {
	t.Helper()
	cursor := ""
	for range 100 {
		q := fmt.Sprintf("?limit=%d%s", limit, query)
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		var l chatapi.SessionList
		decodeStatus(t, e.do(t, http.MethodGet, "/chat/sessions"+q, tok, ""), http.StatusOK, &l)
		if len(l.Sessions) > limit {
			t.Fatalf("page of %d sessions with limit %d", len(l.Sessions), limit)
		}
		for _, s := range l.Sessions {
			ids = append(ids, s.ID)
		}
		pages = append(pages, len(l.Sessions))
		if l.NextCursor == "" {
			return ids, pages
		}
		if len(l.Sessions) == 0 {
			t.Fatalf("empty page with next_cursor %q", l.NextCursor)
		}
		cursor = l.NextCursor
	}
	t.Fatal("next_cursor never ended")
	return nil, nil
}

// TestSessionPagination: sessions are listed newest activity first and paged by next_cursor with
// no duplicate and no gap, ties on last activity included (they are ordered by id); the last
// page has no next_cursor, also when it is full; other users' and archived sessions stay out
// unless asked for; a message moves its session to the front.
func TestSessionPagination(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	// 7 sessions through the API, and 5 that share one last activity time (stored directly).
	var viaAPI []string
	for i := range 7 {
		viaAPI = append(viaAPI, e.createSession(t, e.alice, fmt.Sprintf("session %d", i)).ID)
	}
	tie := time.Now().Add(-time.Hour).UTC().Truncate(time.Microsecond)
	var tied []string
	for range 5 {
		id := uuid.NewString()
		if _, err := e.pool.Exec(ctx, `INSERT INTO conversations (conversation_id, user_id, title, last_activity_at) VALUES ($1, 'alice', 'tied', $2)`, id, tie); err != nil {
			t.Fatal(err)
		}
		tied = append(tied, id)
	}
	archived := e.createSession(t, e.alice, "archived").ID
	if _, err := e.pool.Exec(ctx, `UPDATE conversations SET archived = true WHERE conversation_id = $1`, archived); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		e.createSession(t, e.bob, "bob's")
	}

	// Newest first: the API's sessions in reverse creation order, then the tied ones by id, descending.
	slices.Sort(tied)
	slices.Reverse(tied)
	want := slices.Clone(viaAPI)
	slices.Reverse(want)
	want = append(want, tied...)

	for _, limit := range []int{1, 3, 4, 5, 12, 20, 100} {
		t.Run(fmt.Sprint("limit ", limit), func(t *testing.T) {
			ids, pages := e.listAll(t, e.alice, "", limit)
			if !slices.Equal(ids, want) {
				t.Errorf("paged ids\n%v\nwant\n%v", ids, want)
			}
			wantPages := (len(want) + limit - 1) / limit
			if len(pages) != wantPages {
				t.Errorf("%d pages %v for %d sessions at %d a page, want %d (no empty last page)", len(pages), pages, len(want), limit, wantPages)
			}
		})
	}

	withArchived, _ := e.listAll(t, e.alice, "&include_archived=true", 5)
	if len(withArchived) != len(want)+1 || withArchived[0] != archived {
		t.Errorf("with archived: %d sessions starting %v, want %d starting with the archived one (the newest)", len(withArchived), withArchived[:1], len(want)+1)
	}
	if bobs, _ := e.listAll(t, e.bob, "", 2); len(bobs) != 3 {
		t.Errorf("bob lists %d sessions, want his 3", len(bobs))
	}

	// A message moves its session to the front; a cursor taken before still ends the listing
	// without repeating a session.
	var first chatapi.SessionList
	decodeStatus(t, e.do(t, http.MethodGet, "/chat/sessions?limit=4", e.alice, ""), http.StatusOK, &first)
	oldest := tied[len(tied)-1]
	e.exchange(t, e.alice, oldest, "wake up")
	ids, _ := e.listAll(t, e.alice, "", 20)
	if ids[0] != oldest {
		t.Errorf("after a message, the list starts with %s, want %s", ids[0], oldest)
	}
	seen := map[string]bool{}
	for _, s := range first.Sessions {
		seen[s.ID] = true
	}
	cursor := first.NextCursor
	for cursor != "" {
		var l chatapi.SessionList
		decodeStatus(t, e.do(t, http.MethodGet, "/chat/sessions?limit=4&cursor="+url.QueryEscape(cursor), e.alice, ""), http.StatusOK, &l)
		for _, s := range l.Sessions {
			if seen[s.ID] {
				t.Errorf("session %s listed twice across pages", s.ID)
			}
			seen[s.ID] = true
		}
		cursor = l.NextCursor
	}
}

// TestMessagePagination: messages are read in seq order, limit at a time, continuing with
// after=<last_seq>, to an empty page whose last_seq is the after given.
func TestMessagePagination(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.createSession(t, e.alice, "Long talk")
	var want []chatapi.MessageView
	for i := range 4 {
		ex := e.exchange(t, e.alice, s.ID, fmt.Sprintf("message %d", i))
		want = append(want, ex.User, ex.Assistant)
	}

	for _, limit := range []int{1, 3, 8, 200} {
		t.Run(fmt.Sprint("limit ", limit), func(t *testing.T) {
			var got []chatapi.MessageView
			after := int64(0)
			for range 20 {
				var l chatapi.MessageList
				decodeStatus(t, e.do(t, http.MethodGet, fmt.Sprintf("/chat/sessions/%s/messages?after=%d&limit=%d", s.ID, after, limit), e.alice, ""), http.StatusOK, &l)
				if len(l.Messages) > limit {
					t.Fatalf("%d messages with limit %d", len(l.Messages), limit)
				}
				if len(l.Messages) == 0 {
					if l.LastSeq != after {
						t.Errorf("empty page last_seq %d, want after %d", l.LastSeq, after)
					}
					break
				}
				if l.Messages[0].Seq != after+1 {
					t.Errorf("page after %d starts at seq %d", after, l.Messages[0].Seq)
				}
				got = append(got, l.Messages...)
				after = l.LastSeq
			}
			if len(got) != len(want) {
				t.Fatalf("read %d messages, want %d", len(got), len(want))
			}
			for i := range want {
				if !sameMessage(got[i], want[i]) {
					t.Errorf("message %d: %+v, want %+v", i, got[i], want[i])
				}
			}
		})
	}

	// The default page is 50 messages; a later after reads the tail.
	var l chatapi.MessageList
	decodeStatus(t, e.do(t, http.MethodGet, "/chat/sessions/"+s.ID+"/messages?after=6", e.alice, ""), http.StatusOK, &l)
	if len(l.Messages) != 2 || l.Messages[0].Seq != 7 || l.LastSeq != 8 {
		t.Errorf("after=6: %+v, want seqs 7 and 8", l)
	}
}
