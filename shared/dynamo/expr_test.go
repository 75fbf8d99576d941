package dynamo

import (
	"maps"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// TestExpressions checks what expr builds, clause by clause, with the names
// and values each expression uses and no other.
func TestExpressions(t *testing.T) {
	cases := []struct {
		name            string
		build           func(e *expr)
		update, cond    string
		names           map[string]string
		values          []string
		noNames, noVals bool
	}{
		{
			name: "set, remove and add, in that order",
			build: func(e *expr) {
				e.adds(e.attr("n"), e.val("one", num(1))).removes(e.attr("gone")).setTo(e.attr("a"), e.val("v", str("x")))
			},
			update: "SET #a = :v REMOVE #gone ADD #n :one",
			names:  map[string]string{"#a": "a", "#gone": "gone", "#n": "n"},
			values: []string{":v", ":one"},
		},
		{
			name: "functions of operands",
			build: func(e *expr) {
				e.setTo(e.attr("staleAt"), plus(e.val("from", num(1)), ifNotExists(e.attr("threshold"), e.val("default", num(2)))))
			},
			update: "SET #staleAt = :from + if_not_exists(#threshold, :default)",
			names:  map[string]string{"#staleAt": "staleAt", "#threshold": "threshold"},
			values: []string{":from", ":default"},
		},
		{
			name: "a map key is aliased",
			build: func(e *expr) {
				edge := e.attr("pendingEdges").dot(e.alias("edge", "sat-1#connected@2"))
				e.removes(edge).when(exists(edge))
			},
			update: "REMOVE #pendingEdges.#edge",
			cond:   "attribute_exists(#pendingEdges.#edge)",
			names:  map[string]string{"#pendingEdges": "pendingEdges", "#edge": "sat-1#connected@2"},
			noVals: true,
		},
		{
			name:   "a name that is no identifier takes an alias of its own",
			build:  func(e *expr) { e.when(exists(e.attr("a.b"))) },
			cond:   "attribute_exists(#attr)",
			names:  map[string]string{"#attr": "a.b"},
			noVals: true,
		},
		{
			name: "an alias asked for with another name takes a numbered one",
			build: func(e *expr) {
				e.when(and(exists(e.alias("k", "one")), exists(e.alias("k", "two")), exists(e.alias("k", "one"))))
			},
			cond:   "attribute_exists(#k) AND attribute_exists(#k2) AND attribute_exists(#k)",
			names:  map[string]string{"#k": "one", "#k2": "two"},
			noVals: true,
		},
		{
			name: "a value asked for again is the same; another under the name is numbered",
			build: func(e *expr) {
				e.setTo(e.attr("a"), e.val("now", num(1))).setTo(e.attr("b"), e.val("now", num(1))).setTo(e.attr("c"), e.val("now", num(2)))
			},
			update: "SET #a = :now, #b = :now, #c = :now2",
			names:  map[string]string{"#a": "a", "#b": "b", "#c": "c"},
			values: []string{":now", ":now2"},
		},
		{
			name: "OR inside AND is parenthesised, AND inside OR is not",
			build: func(e *expr) {
				e.when(exists(e.attr("pk")))
				e.when(or(notExists(e.attr("g")), eq(e.attr("g"), e.val("read", num(1)))))
				e.when(or(and(exists(e.attr("x")), lt(e.attr("x"), e.val("max", num(3)))), le(size(e.attr("m")), e.val("max", num(3)))))
			},
			cond:   "attribute_exists(#pk) AND (attribute_not_exists(#g) OR #g = :read) AND (attribute_exists(#x) AND #x < :max OR size(#m) <= :max)",
			names:  map[string]string{"#pk": "pk", "#g": "g", "#x": "x", "#m": "m"},
			values: []string{":read", ":max"},
		},
		{
			name: "NOT parenthesises all but an atom",
			build: func(e *expr) {
				e.when(and(not(and(exists(e.attr("a")), ne(e.attr("b"), e.val("v", str("x"))))), not(beginsWith(e.attr("c"), e.val("p", str("live#"))))))
			},
			cond:   "NOT (attribute_exists(#a) AND #b <> :v) AND NOT begins_with(#c, :p)",
			names:  map[string]string{"#a": "a", "#b": "b", "#c": "c"},
			values: []string{":v", ":p"},
		},
		{
			name: "the zero condition is left out, and one alone is as it is",
			build: func(e *expr) {
				e.when(and(condition{}, or(condition{}, gt(e.attr("exp"), e.val("now", num(5))))))
			},
			cond:   "#exp > :now",
			names:  map[string]string{"#exp": "exp"},
			values: []string{":now"},
		},
		{
			name:    "nothing",
			build:   func(*expr) {},
			noNames: true, noVals: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newExpr()
			tc.build(e)
			if got := aws.ToString(e.update()); got != tc.update {
				t.Errorf("update %q, want %q", got, tc.update)
			}
			if got := aws.ToString(e.condition()); got != tc.cond {
				t.Errorf("condition %q, want %q", got, tc.cond)
			}
			if tc.update == "" && e.update() != nil || tc.cond == "" && e.condition() != nil {
				t.Error("an empty expression is not nil")
			}
			if got := e.attributeNames(); tc.noNames != (got == nil) || !tc.noNames && !maps.Equal(got, tc.names) {
				t.Errorf("names %v, want %v", got, tc.names)
			}
			got := e.attributeValues()
			if tc.noVals != (got == nil) || len(got) != len(tc.values) {
				t.Errorf("values %v, want %v", got, tc.values)
			}
			for _, v := range tc.values {
				if _, ok := got[v]; !ok {
					t.Errorf("values %v, want %s among them", got, v)
				}
			}
		})
	}
}

// TestExpressionRequests checks the requests an expr fills in carry its
// expressions, names and values, and a read its key condition and
// projection.
func TestExpressionRequests(t *testing.T) {
	e := whereExists(SatellitesPartitionKey)
	e.setTo(e.attr(nameAttr), e.val("name", str("n")))
	key := satelliteItemKey("s")
	in := e.updateItem("table", key)
	if aws.ToString(in.TableName) != "table" || aws.ToString(in.UpdateExpression) != "SET #name = :name" ||
		aws.ToString(in.ConditionExpression) != "attribute_exists(#pk)" || len(in.ExpressionAttributeNames) != 2 || len(in.ExpressionAttributeValues) != 1 {
		t.Errorf("UpdateItem %+v", in)
	}
	if put := whereNew(SatellitesPartitionKey).transactPut("table", key); aws.ToString(put.ConditionExpression) != "attribute_not_exists(#pk)" || put.ExpressionAttributeValues != nil {
		t.Errorf("Put %+v", put)
	}

	q := newExpr()
	q.key(eq(q.attr(SatellitesPartitionKey), q.val("pk", str("SAT#s"))))
	q.key(lt(q.attr(SatellitesSortKey), q.val("statuses", str(statusBoundary))))
	q.project(SatellitesSortKey, tokenGenerationAttr)
	query := q.query("table", true)
	if aws.ToString(query.KeyConditionExpression) != "#pk = :pk AND #sk < :statuses" || aws.ToString(query.ProjectionExpression) != "#sk, #tokenGeneration" ||
		query.FilterExpression != nil || !aws.ToBool(query.ConsistentRead) {
		t.Errorf("Query %+v", query)
	}
	if eventual := newExpr().query("table", false); eventual.ConsistentRead != nil || eventual.ExpressionAttributeNames != nil {
		t.Errorf("an eventually consistent Query without expressions: %+v", eventual)
	}
	s := newExpr()
	s.when(notExists(s.attr(FleetIndexPartKey)))
	if scan := s.scan("table"); aws.ToString(scan.FilterExpression) != "attribute_not_exists(#fleetPart)" {
		t.Errorf("Scan %+v", scan)
	}
}
