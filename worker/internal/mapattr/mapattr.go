// Package mapattr sets one field of a DynamoDB map attribute idempotently.
//
// DynamoDB refuses `SET m.f = :v` when the map m does not exist yet, and one
// update expression may not both create m and set a path inside it. SetField
// therefore writes under a condition — set the field when the map exists,
// create the map holding the field when it does not — and switches to the
// other form when the condition fails, so concurrent writers never overwrite
// each other's fields.
package mapattr

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/wahook/wahook/shared/awserr"
)

// DB is the part of the DynamoDB client SetField uses.
type DB interface {
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
}

// Extra is more of the update, written in the same request as the field:
// SET and ADD clauses with their own placeholders (the names #m, #f and the
// values :v, :mv are SetField's).
type Extra struct {
	Set    []string
	Add    []string
	Names  map[string]string
	Values map[string]types.AttributeValue
}

// Field names one field of a map attribute of one item.
type Field struct {
	Table string
	Key   map[string]types.AttributeValue
	// Map is the map attribute's name; Name the field's.
	Map, Name string
	Value     types.AttributeValue
}

// ErrContended is returned when the map kept appearing and disappearing
// under the writes (another writer removing it), which no caller here does.
var ErrContended = errors.New("mapattr: map attribute contended")

// SetField sets f.Map.f.Name = f.Value on the item (created when missing),
// together with extra, in one successful write.
func SetField(ctx context.Context, db DB, f Field, extra Extra) error {
	names := map[string]string{"#m": f.Map}
	maps.Copy(names, extra.Names)
	tail := ""
	if len(extra.Set) > 0 {
		tail = ", " + strings.Join(extra.Set, ", ")
	}
	if len(extra.Add) > 0 {
		tail += " ADD " + strings.Join(extra.Add, ", ")
	}
	exists := true
	for range 4 {
		vals := maps.Clone(extra.Values)
		if vals == nil {
			vals = map[string]types.AttributeValue{}
		}
		in := &dynamodb.UpdateItemInput{TableName: aws.String(f.Table), Key: f.Key, ExpressionAttributeNames: maps.Clone(names)}
		if exists {
			in.ExpressionAttributeNames["#f"] = f.Name
			vals[":v"] = f.Value
			in.UpdateExpression = aws.String("SET #m.#f = :v" + tail)
			in.ConditionExpression = aws.String("attribute_exists(#m)")
		} else {
			vals[":mv"] = &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{f.Name: f.Value}}
			in.UpdateExpression = aws.String("SET #m = :mv" + tail)
			in.ConditionExpression = aws.String("attribute_not_exists(#m)")
		}
		in.ExpressionAttributeValues = vals
		_, err := db.UpdateItem(ctx, in)
		if err == nil {
			return nil
		}
		if !awserr.ConditionFailed(err) {
			return fmt.Errorf("set %s.%s: %w", f.Map, f.Name, err)
		}
		exists = !exists
	}
	return fmt.Errorf("set %s.%s: %w", f.Map, f.Name, ErrContended)
}
