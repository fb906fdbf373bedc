/*  ml_table: listings as rows of arrays with their column names. See include/ml_table.h. */
#include "ml_table.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

size_t ml_table_column (const json_t *columns, const char *name)
{
    size_t index;
    json_t *column;
    json_array_foreach (columns, index, column)
    {
        const char *text = json_string_value (column);
        if (text && strcmp (text, name) == 0)
            return index;
    }
    return ML_TABLE_NONE;
}

const char *ml_table_text (const json_t *row, size_t column)
{
    const char *text = json_string_value (json_array_get (row, column));
    return text ? text : "";
}

json_t *ml_table_objects (const json_t *columns, const json_t *rows)
{
    json_t *objects = json_array ();
    size_t index;
    json_t *row;
    json_array_foreach (rows, index, row)
    {
        json_t *object = json_object ();
        size_t column;
        json_t *name;
        json_array_foreach (columns, column, name)
        {
            json_t *value = json_array_get (row, column);
            if (json_is_string (name))
                json_object_set (object, json_string_value (name), value ? value : json_null ());
        }
        json_array_append_new (objects, object);
    }
    return objects;
}

void ml_table_test (bool verbose)
{
    if (verbose)
        printf (" * ml_table: ");
    json_t *listing = json_loads ("{\"columns\": [\"number\", \"amount_minor\", 7],"
                                  " \"rows\": [[\"A-1\", 100, 1], [\"B-2\", null], [], 5]}",
                                  0, NULL);
    assert (listing);
    json_t *columns = json_object_get (listing, "columns"),
           *rows = json_object_get (listing, "rows");
    assert (ml_table_column (columns, "amount_minor") == 1);
    assert (ml_table_column (columns, "missing") == ML_TABLE_NONE);
    assert (ml_table_column (NULL, "number") == ML_TABLE_NONE);
    assert (strcmp (ml_table_text (json_array_get (rows, 0), 0), "A-1") == 0);
    //  Missing, null, not text, a row that is not an array: all "".
    assert (strcmp (ml_table_text (json_array_get (rows, 0), 1), "") == 0);
    assert (strcmp (ml_table_text (json_array_get (rows, 1), 1), "") == 0);
    assert (strcmp (ml_table_text (json_array_get (rows, 2), 0), "") == 0);
    assert (strcmp (ml_table_text (json_array_get (rows, 3), 0), "") == 0);
    assert (strcmp (ml_table_text (NULL, 0), "") == 0);
    json_t *objects = ml_table_objects (columns, rows);
    assert (json_array_size (objects) == 4);
    json_t *first = json_array_get (objects, 0);
    assert (json_integer_value (json_object_get (first, "amount_minor")) == 100);
    assert (json_object_size (first) == 2); //  the column that is no name is left out
    assert (json_is_null (json_object_get (json_array_get (objects, 1), "amount_minor")));
    assert (json_is_null (json_object_get (json_array_get (objects, 2), "number")));
    json_decref (objects);
    json_decref (listing);
    if (verbose)
        printf ("OK\n");
}
