/*  ml_table: a listing as the core sends its largest replies: rows that are JSON arrays,
    beside an array that names their columns ({"item_columns": [...], "items": [[...]]}).

    A payer's invoice list is the core's most frequent reply; as arrays it is a third of the
    size of the same rows as objects, and much cheaper to build, send and parse (each
    object is a hash table). These helpers read such a listing by column name.
*/
#ifndef ML_TABLE_H_INCLUDED
#define ML_TABLE_H_INCLUDED

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define ML_TABLE_NONE ((size_t)-1)

//  The position of the column called name in columns, or ML_TABLE_NONE.
size_t ml_table_column (const json_t *columns, const char *name);

//  The text of a cell (borrowed), or "" when the cell is missing, null or not text.
const char *ml_table_text (const json_t *row, size_t column);

//  The rows as objects named by columns (new reference), for code that looks values up by
//  name; a cell a row lacks is null.
json_t *ml_table_objects (const json_t *columns, const json_t *rows);

void ml_table_test (bool verbose);

#endif
