package satctl

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/url"
	"strconv"
)

// paging holds the paging flags of the listing commands (list, packages).
type paging struct {
	limit   int
	token   string
	onePage bool
}

func registerPaging(fs *flag.FlagSet) *paging {
	p := &paging{}
	fs.IntVar(&p.limit, "limit", 0, "satellites per request, 1 to 1000 (default: the API's, 100)")
	fs.StringVar(&p.token, "next-token", "", "start at the page this token names (printed by --one-page)")
	fs.BoolVar(&p.onePage, "one-page", false, "fetch one page only, and print the token of the next")
	return p
}

// fetch calls each with the JSON of every page of path, from p.token on,
// following nextToken until the last page (only the first with
// p.onePage). It returns the nextToken of the last page fetched ("" at
// the end of the listing).
func (e *env) fetch(path string, p *paging, each func(raw json.RawMessage) error) (string, error) {
	if p.limit < 0 {
		return "", usagef("--limit must be positive")
	}
	token := p.token
	for {
		q := url.Values{}
		if p.limit > 0 {
			q.Set("limit", strconv.Itoa(p.limit))
		}
		if token != "" {
			q.Set("nextToken", token)
		}
		var raw json.RawMessage
		if err := e.client.Do(e.ctx, "GET", path, q, nil, &raw); err != nil {
			return "", err
		}
		if err := each(raw); err != nil {
			return "", err
		}
		var page struct {
			NextToken string `json:"nextToken"`
		}
		if err := json.Unmarshal(raw, &page); err != nil {
			return "", fmt.Errorf("GET %s: %w", path, err)
		}
		if page.NextToken == "" || p.onePage {
			return page.NextToken, nil
		}
		if page.NextToken == token {
			return "", fmt.Errorf("GET %s answered the same nextToken twice; stopping", path)
		}
		token = page.NextToken
	}
}

// printNextToken tells how to fetch the page after a --one-page listing.
func (e *env) printNextToken(command, token string) {
	if token != "" {
		fmt.Fprintf(e.out, "\nmore: satctl %s --one-page --next-token %s\n", command, token)
	}
}
