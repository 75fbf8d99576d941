package dynamo

import (
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Expressions. Every update and condition expression of this package is
// built by an expr: SET, REMOVE and ADD clauses and a condition composed
// of paths, values and functions, each registering the attribute name or
// value it uses. So a request carries exactly the names and values its
// expressions use (DynamoDB refuses one that carries any other), and no
// expression is made by splicing strings.
//
// Placeholders are readable: an attribute is "#" and its name, a value
// ":" and the name its caller gives it, so an expression reads like the
// item it writes ("SET #heartbeatAt = :now"). An attribute name that is
// no identifier (a map key: an edge id, a capability kind) takes an alias
// its caller names. A placeholder asked for again names the same
// attribute or value; asked for with another one, it takes a numbered
// variant (":now2"), so two callers composing one expression never
// collide.
//
// The SDK's expression builder (feature/dynamodb/expression) does the
// same with numbered placeholders ("#0 = :0"), values marshalled by
// reflection and an error to check at every build: this one keeps the
// codec's explicit values and expressions that tests and logs can read.

// expr collects one request's expressions and the names and values they
// use. Its zero value is not ready: use newExpr.
type expr struct {
	names            map[string]string
	values           item
	set, remove, add []string
	// cond is a write's condition, or a read's filter.
	cond       condition
	keyCond    condition
	projection []string
}

func newExpr() *expr { return &expr{names: map[string]string{}, values: item{}} }

// operand is what a comparison compares or a SET assigns: a path, a
// value, or a function of them.
type operand interface{ text() string }

// path is an attribute, or an element of a map attribute, as placeholders
// joined by dots.
type path string

// value is a value's placeholder.
type value string

// computed is a function of operands: if_not_exists, +, size.
type computed string

func (p path) text() string     { return string(p) }
func (v value) text() string    { return string(v) }
func (c computed) text() string { return string(c) }

// dot is the element child (a path of the map attribute p) of p.
func (p path) dot(child path) path { return p + "." + child }

var identifier = regexp.MustCompile(`^[A-Za-z0-9_]+$`)

// attr is the path of the attribute name: placeholder "#" and the name.
func (e *expr) attr(name string) path {
	if !identifier.MatchString(name) {
		return e.alias("attr", name)
	}
	return e.alias(name, name)
}

// alias is the path of the attribute name under placeholder "#" and
// alias: for a name that is no identifier (a map key), or one that reads
// better shorter.
func (e *expr) alias(alias, name string) path {
	for n := 1; ; n++ {
		ph := "#" + alias
		if n > 1 {
			ph += strconv.Itoa(n)
		}
		if got, taken := e.names[ph]; !taken || got == name {
			e.names[ph] = name
			return path(ph)
		}
	}
}

// val is the placeholder of v: ":" and name.
func (e *expr) val(name string, v types.AttributeValue) value {
	for n := 1; ; n++ {
		ph := ":" + name
		if n > 1 {
			ph += strconv.Itoa(n)
		}
		if got, taken := e.values[ph]; !taken || reflect.DeepEqual(got, v) {
			e.values[ph] = v
			return value(ph)
		}
	}
}

// SET, REMOVE and ADD clauses.

// setTo adds "SET p = o".
func (e *expr) setTo(p path, o operand) *expr {
	e.set = append(e.set, string(p)+" = "+o.text())
	return e
}

// removes adds "REMOVE p" for each path.
func (e *expr) removes(paths ...path) *expr {
	for _, p := range paths {
		e.remove = append(e.remove, string(p))
	}
	return e
}

// adds adds "ADD p v": a number added to p (p starts at 0 when missing).
func (e *expr) adds(p path, v value) *expr {
	e.add = append(e.add, string(p)+" "+string(v))
	return e
}

// when adds c to the condition (AND).
func (e *expr) when(c condition) *expr {
	e.cond = and(e.cond, c)
	return e
}

// key adds c to a query's key condition (AND).
func (e *expr) key(c condition) *expr {
	e.keyCond = and(e.keyCond, c)
	return e
}

// project makes a read return only the attributes names.
func (e *expr) project(names ...string) *expr {
	for _, n := range names {
		e.projection = append(e.projection, string(e.attr(n)))
	}
	return e
}

// Functions of operands.

// ifNotExists is p, or o when p is missing.
func ifNotExists(p path, o operand) computed {
	return computed("if_not_exists(" + string(p) + ", " + o.text() + ")")
}

// plus is a + b.
func plus(a, b operand) computed { return computed(a.text() + " + " + b.text()) }

// size is the size of p: a map's entries, a string's length.
func size(p path) computed { return computed("size(" + string(p) + ")") }

// condition is a condition expression; the zero condition is none (and
// AND leaves it out).
type condition struct {
	text string
	// level is how tightly the condition binds: an OR (1) needs
	// parentheses inside an AND (2), and either inside a NOT.
	level int
}

const (
	levelOr = 1 + iota
	levelAnd
	levelAtom
)

func atom(text string) condition { return condition{text: text, level: levelAtom} }

func exists(p path) condition    { return atom("attribute_exists(" + string(p) + ")") }
func notExists(p path) condition { return atom("attribute_not_exists(" + string(p) + ")") }

func beginsWith(p path, prefix value) condition {
	return atom("begins_with(" + string(p) + ", " + string(prefix) + ")")
}

func compare(a operand, op string, b operand) condition {
	return atom(a.text() + " " + op + " " + b.text())
}

func eq(a, b operand) condition { return compare(a, "=", b) }
func ne(a, b operand) condition { return compare(a, "<>", b) }
func lt(a, b operand) condition { return compare(a, "<", b) }
func le(a, b operand) condition { return compare(a, "<=", b) }
func gt(a, b operand) condition { return compare(a, ">", b) }

// and is every condition of cs (none left out: the zero condition).
func and(cs ...condition) condition { return join(cs, " AND ", levelAnd) }

// or is any condition of cs.
func or(cs ...condition) condition { return join(cs, " OR ", levelOr) }

func join(cs []condition, op string, level int) condition {
	var (
		parts []string
		only  condition
	)
	for _, c := range cs {
		if c.text != "" {
			parts, only = append(parts, c.within(level)), c
		}
	}
	switch len(parts) {
	case 0:
		return condition{}
	case 1:
		return only // no operator: as it is
	}
	return condition{text: strings.Join(parts, op), level: level}
}

// within is c's text as an operand of an operator of the given level.
func (c condition) within(level int) string {
	if c.level < level {
		return "(" + c.text + ")"
	}
	return c.text
}

func not(c condition) condition { return atom("NOT " + c.within(levelAtom)) }

// What a request carries.

// update is the update expression: nil when it has no clause.
func (e *expr) update() *string {
	var clauses []string
	for _, c := range []struct {
		verb  string
		parts []string
	}{{"SET", e.set}, {"REMOVE", e.remove}, {"ADD", e.add}} {
		if len(c.parts) > 0 {
			clauses = append(clauses, c.verb+" "+strings.Join(c.parts, ", "))
		}
	}
	if len(clauses) == 0 {
		return nil
	}
	s := strings.Join(clauses, " ")
	return &s
}

// condition is the condition expression (a read's filter): nil when there
// is none.
func (e *expr) condition() *string { return text(e.cond) }

// text is c's text: nil for the zero condition.
func text(c condition) *string {
	if c.text == "" {
		return nil
	}
	s := c.text
	return &s
}

// projectionExpression is the projection: nil when a read returns whole
// items.
func (e *expr) projectionExpression() *string {
	if len(e.projection) == 0 {
		return nil
	}
	s := strings.Join(e.projection, ", ")
	return &s
}

// attributeNames are the names the expressions use: nil when none
// (DynamoDB refuses an empty map).
func (e *expr) attributeNames() map[string]string {
	if len(e.names) == 0 {
		return nil
	}
	return e.names
}

// attributeValues are the values the expressions use: nil when none.
func (e *expr) attributeValues() item {
	if len(e.values) == 0 {
		return nil
	}
	return e.values
}

// Requests.

// updateItem is an UpdateItem of key in table with e's expressions.
func (e *expr) updateItem(table string, key item) *dynamodb.UpdateItemInput {
	return &dynamodb.UpdateItemInput{
		TableName: &table, Key: key, UpdateExpression: e.update(), ConditionExpression: e.condition(),
		ExpressionAttributeNames: e.attributeNames(), ExpressionAttributeValues: e.attributeValues(),
	}
}

// transactUpdate is a transaction's update of key in table.
func (e *expr) transactUpdate(table string, key item) *types.Update {
	return &types.Update{
		TableName: &table, Key: key, UpdateExpression: e.update(), ConditionExpression: e.condition(),
		ExpressionAttributeNames: e.attributeNames(), ExpressionAttributeValues: e.attributeValues(),
	}
}

// conditionCheck is a transaction's check of e's condition on key in table.
func (e *expr) conditionCheck(table string, key item) *types.ConditionCheck {
	return &types.ConditionCheck{
		TableName: &table, Key: key, ConditionExpression: e.condition(),
		ExpressionAttributeNames: e.attributeNames(), ExpressionAttributeValues: e.attributeValues(),
	}
}

// transactPut is a transaction's put of it in table, under e's condition.
func (e *expr) transactPut(table string, it item) *types.Put {
	return &types.Put{
		TableName: &table, Item: it, ConditionExpression: e.condition(),
		ExpressionAttributeNames: e.attributeNames(), ExpressionAttributeValues: e.attributeValues(),
	}
}

// transactDelete is a transaction's delete of key in table, under e's
// condition.
func (e *expr) transactDelete(table string, key item) *types.Delete {
	return &types.Delete{
		TableName: &table, Key: key, ConditionExpression: e.condition(),
		ExpressionAttributeNames: e.attributeNames(), ExpressionAttributeValues: e.attributeValues(),
	}
}

// putItem is a PutItem of it in table, under e's condition.
func (e *expr) putItem(table string, it item) *dynamodb.PutItemInput {
	return &dynamodb.PutItemInput{
		TableName: &table, Item: it, ConditionExpression: e.condition(),
		ExpressionAttributeNames: e.attributeNames(), ExpressionAttributeValues: e.attributeValues(),
	}
}

// deleteItem is a DeleteItem of key in table, under e's condition.
func (e *expr) deleteItem(table string, key item) *dynamodb.DeleteItemInput {
	return &dynamodb.DeleteItemInput{
		TableName: &table, Key: key, ConditionExpression: e.condition(),
		ExpressionAttributeNames: e.attributeNames(), ExpressionAttributeValues: e.attributeValues(),
	}
}

// query is a Query of table with e's key condition, projection and filter
// (e's condition); consistent asks for a strongly consistent read.
func (e *expr) query(table string, consistent bool) *dynamodb.QueryInput {
	in := &dynamodb.QueryInput{
		TableName: &table, KeyConditionExpression: text(e.keyCond), FilterExpression: e.condition(),
		ProjectionExpression:     e.projectionExpression(),
		ExpressionAttributeNames: e.attributeNames(), ExpressionAttributeValues: e.attributeValues(),
	}
	if consistent {
		in.ConsistentRead = &consistent
	}
	return in
}

// scan is a Scan of table with e's projection and filter.
func (e *expr) scan(table string) *dynamodb.ScanInput {
	return &dynamodb.ScanInput{
		TableName: &table, FilterExpression: e.condition(), ProjectionExpression: e.projectionExpression(),
		ExpressionAttributeNames: e.attributeNames(), ExpressionAttributeValues: e.attributeValues(),
	}
}

// whereExists is the condition of a write that must find key's item:
// attribute_exists of the table's partition key.
func whereExists(partitionKey string) *expr {
	e := newExpr()
	return e.when(exists(e.attr(partitionKey)))
}

// whereNew is the condition of a write that must not find key's item.
func whereNew(partitionKey string) *expr {
	e := newExpr()
	return e.when(notExists(e.attr(partitionKey)))
}
